"""Records published to a Kafka topic (an event hub, through Event Hubs' Kafka endpoint)."""

import json
import typing

import apache_beam as beam


def keyed_json(record, key_field):
    """(key bytes, compact JSON bytes) of a record: the Kafka message it becomes."""
    key = record.get(key_field)
    return ('' if key is None else str(key)).encode('utf-8'), json.dumps(
        record, ensure_ascii=False, separators=(',', ':'), sort_keys=True).encode('utf-8')


class PublishToKafka(beam.PTransform):
    """Records (dicts) -> JSON messages on `topic`, keyed by their `key_field` (alerts: SystemAlertId,
    so that every copy of an alert lands on the same partition, in order).

    Args:
      topic: the topic.
      producer_config: Kafka producer properties (bootstrap servers, security).
      key_field: the record field whose value keys the message.
      expansion_service: the Java expansion service of WriteToKafka.
    """

    def __init__(self, topic, producer_config, key_field, expansion_service):
        super().__init__()
        self._topic = topic
        self._producer_config = producer_config
        self._key_field = key_field
        self._expansion_service = expansion_service

    def expand(self, records):
        from apache_beam.io.kafka import WriteToKafka
        return (
            records
            | 'ToKeyedJson' >> beam.Map(keyed_json, self._key_field).with_output_types(
                typing.Tuple[bytes, bytes])
            | 'WriteToKafka' >> WriteToKafka(
                producer_config=self._producer_config, topic=self._topic,
                expansion_service=self._expansion_service))
