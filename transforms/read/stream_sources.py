"""Unbounded sources: Kafka (Event Hubs) or Pub/Sub messages of the three tables, in any JSON shape of
the batch exports.

Each message is one JSON document: a Log Analytics row, a ``{"records": [...]}`` envelope (as data
export and diagnostic settings send them to Event Hubs), an Activity Log record or a Defender
streaming record; the rows are decoded and typed exactly as in batch (`transforms.read.formats.records`,
`transforms.read.ingest`) and timestamped with their TimeGenerated.

Kafka messages are read with Java's KafkaIO (cross-language). Each partition's watermark is the
largest message timestamp it has read; what happens when a partition has been read to its end depends
on what the timestamps are:

* enqueue times (Event Hubs sets them; the default): Beam's ``ReadFromKafka`` with its ``CreateTime``
  policy, which then moves the partition's watermark to the wall clock, as no later message can be
  older than now;
* the events' own times, stamped by the producer (``pipelines.replay``, at N times real speed): the
  wall clock says nothing about them, so the read of this project's Java classes
  (``PRODUCER_TIME_READ_URN``) follows the timestamps only, and a partition that receives nothing
  holds the watermark back. A message keyed `HEARTBEAT_KEY` carries no row: it only moves its
  partition's watermark to its timestamp (a replay ends with one on every partition, so that the last
  windows close); it is counted, not decoded.
"""

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from transforms.read import dead_letter as reasons
from transforms.read.dead_letter import DEAD_LETTER, ROWS
from transforms.read.formats.records import Undecodable, decode_object, record_rows
from transforms.read.ingest import typed_row


HEARTBEAT_KEY = b'rare-runcommand:heartbeat'
# The Kafka read of this project's Java classes (templates/kafka/java/.../ProducerTimeRead.java), in its
# expansion service and Flink job server jars.
PRODUCER_TIME_READ_URN = 'rarerun:kafka:read_producer_time:v1'
STREAM = 'stream'   # metrics namespace of the stream sources


def decode_message(table, source, position, message):
    """One message's timestamped (table, typed row) pairs, and tagged dead letters for what cannot be used.

    Args:
      table: the table the message was read for.
      source: where it came from (``kafka://<topic>``, a Pub/Sub subscription).
      position: where in the source, e.g. ``{'partition': 0, 'offset': 12}``; a record's place inside
        the message is added to it.
      message: the message's bytes.
    """
    record, reason = decode_object(message)
    if reason:
        yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(table, source, position, reason, message))
        return
    for item in record_rows(record, table):
        if isinstance(item, Undecodable):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(
                table, source, dict(position, **item.position), item.reason, item.raw))
            continue
        row = typed_row(table, item.row)
        if row['TimeGenerated'] is None:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(
                table, source, dict(position, **item.position), reasons.NO_TIME, message))
            continue
        yield window.TimestampedValue((table, row), Timestamp(micros=row['TimeGenerated']))


class DecodeMessages(beam.DoFn):
    """Message bytes -> timestamped (table, typed row); bad messages and records to the dead letter."""

    def __init__(self, table, source):
        self._table = table
        self._source = source

    def process(self, message):
        yield from decode_message(self._table, self._source, {}, message)


class DecodeKafkaRecords(beam.DoFn):
    """Kafka records (ReadFromKafka's rows with metadata) -> timestamped (table, typed row); a bad message
    goes to the dead letter with its topic, partition and offset; heartbeats are counted and dropped."""

    def __init__(self, table):
        self._table = table
        self._heartbeats = None

    def setup(self):
        self._heartbeats = Metrics.counter(STREAM, 'heartbeats')

    def process(self, record):
        if record.key == HEARTBEAT_KEY:
            self._heartbeats.inc()
            return
        position = {'partition': record.partition, 'offset': record.offset}
        yield from decode_message(self._table, 'kafka://' + record.topic, position, record.value or b'')


class ReadKafkaTable(beam.PTransform):
    """One table's Kafka topic -> timestamped (table, row) pairs (main) and dead letters (tagged).

    Args:
      table: the table the topic carries.
      topic: the topic (an event hub, on Event Hubs).
      consumer_config: Kafka consumer properties (bootstrap servers, group id, security).
      expansion_service: the Java expansion service of ReadFromKafka (an address or a
        ``BeamJarExpansionService``).
      event_timestamps: the producer stamped the messages with the events' own times (a replay): the
        read whose watermark follows the message timestamps only (``PRODUCER_TIME_READ_URN``), instead
        of KafkaIO's ``CreateTime`` policy, which moves a partition read to its end to the wall clock.
    """

    def __init__(self, table, topic, consumer_config, expansion_service, event_timestamps=False):
        super().__init__()
        self._table = table
        self._topic = topic
        self._consumer_config = consumer_config
        self._expansion_service = expansion_service
        self._event_timestamps = event_timestamps

    def kafka_read(self):
        """The cross-language read of the topic (expanded when applied): rows with topic, partition,
        offset, key and value."""
        if self._event_timestamps:
            from apache_beam.transforms.external import ExternalTransform, ImplicitSchemaPayloadBuilder
            return ExternalTransform(
                PRODUCER_TIME_READ_URN,
                ImplicitSchemaPayloadBuilder({'topics': [self._topic],
                                              'consumer_config': dict(self._consumer_config)}),
                self._expansion_service)
        from apache_beam.io.kafka import ReadFromKafka
        return ReadFromKafka(
            consumer_config=self._consumer_config, topics=[self._topic], with_metadata=True,
            timestamp_policy=ReadFromKafka.create_time_policy, expansion_service=self._expansion_service)

    def expand(self, pbegin):
        records = pbegin | 'ReadFromKafka' >> self.kafka_read()
        return records | 'DecodeKafkaRecords' >> beam.ParDo(
            DecodeKafkaRecords(self._table)).with_outputs(DEAD_LETTER, main=ROWS)


class ReadTableStream(beam.PTransform):
    """A Pub/Sub subscription of one table -> timestamped (table, row) pairs and dead letters.

    Pub/Sub needs the ``gcp`` extra (``pip install .[gcp]``); Event Hubs is read through its Kafka
    endpoint with `ReadKafkaTable`.
    """

    def __init__(self, table, subscription):
        super().__init__()
        self._table = table
        self._subscription = subscription

    def expand(self, pbegin):
        messages = pbegin | 'ReadPubSub' >> beam.io.ReadFromPubSub(subscription=self._subscription)
        return messages | 'DecodeMessages' >> beam.ParDo(
            DecodeMessages(self._table, self._subscription)).with_outputs(DEAD_LETTER, main=ROWS)
