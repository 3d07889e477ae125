"""The streaming detection's wiring: three table streams in (Kafka / Event Hubs, or Pub/Sub), alerts
and dead letters out (Kafka topics, Pub/Sub topics), the query evaluated window by window as the
watermark passes (`transforms.detect.streaming`)."""

import json

import apache_beam as beam

from pipelines import kafka_options
from pipelines.kafka_options import KafkaOptions
from pipelines.options import DetectionOptions
from pipelines.preflight import PreflightError
from transforms.detect.alerts import ALERTS
from transforms.detect.rule import load_rule
from transforms.detect.streaming import DetectInStream
from transforms.detect.windows import parse_timespan
from transforms.read.dead_letter import DEAD_LETTER
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
from transforms.read.stream_sources import ReadKafkaTable, ReadTableStream
from transforms.write.kafka import PublishToKafka

PUBSUB_OPTIONS = {AZURE_ACTIVITY: 'input_subscription_azure_activity',
                  DEVICE_FILE_EVENTS: 'input_subscription_device_file_events',
                  DEVICE_EVENTS: 'input_subscription_device_events'}
KAFKA_TOPIC_OPTIONS = {AZURE_ACTIVITY: 'kafka_topic_azure_activity',
                       DEVICE_FILE_EVENTS: 'kafka_topic_device_file_events',
                       DEVICE_EVENTS: 'kafka_topic_device_events'}


def _missing(options, names):
    return [name for name in names if not getattr(options, name)]


def read_streams(pipeline, options):
    """[(table, ReadTableStream-like result)] of the configured source: Kafka if its bootstrap servers
    are given, else Pub/Sub."""
    kafka = options.view_as(KafkaOptions)
    if kafka.kafka_bootstrap_servers:
        missing = _missing(kafka, KAFKA_TOPIC_OPTIONS.values())
        if missing:
            raise PreflightError('--streaming from Kafka needs ' + ', '.join('--' + name for name in missing))
        try:
            config = kafka_options.consumer_config(kafka, read_for_seconds=kafka_options.read_seconds(options))
        except kafka_options.KafkaSecretError as error:
            raise PreflightError(str(error)) from None
        service = kafka_options.expansion_service(options)
        return [(table, pipeline | 'Stream' + table >> ReadKafkaTable(
            table, getattr(kafka, option), config, service, event_timestamps=kafka.kafka_timestamps == 'event'))
                for table, option in KAFKA_TOPIC_OPTIONS.items()]
    detection = options.view_as(DetectionOptions)
    missing = _missing(detection, PUBSUB_OPTIONS.values())
    if missing:
        raise PreflightError('--streaming needs --kafka_bootstrap_servers with --kafka_topic_* or '
                             + ', '.join('--' + name for name in missing))
    return [(table, pipeline | 'Stream' + table >> ReadTableStream(table, getattr(detection, option)))
            for table, option in PUBSUB_OPTIONS.items()]


def publish(options, alerts, dead_letters):
    """Alerts and dead letters to the Kafka and Pub/Sub topics the options name."""
    kafka = options.view_as(KafkaOptions)
    if kafka.kafka_alerts_topic or kafka.kafka_dead_letter_topic:
        config = kafka_options.producer_config(kafka)
        service = kafka_options.expansion_service(options)
        for name, records, topic, key in (('Alerts', alerts, kafka.kafka_alerts_topic, 'SystemAlertId'),
                                          ('DeadLetters', dead_letters, kafka.kafka_dead_letter_topic, 'table')):
            if topic:
                records | 'Publish%sToKafka' % name >> PublishToKafka(topic, config, key, service)
    detection = options.view_as(DetectionOptions)
    for name, records, topic in (('Alerts', alerts, detection.alerts_topic),
                                 ('DeadLetters', dead_letters, detection.dead_letter_topic)):
        if topic:
            (records
             | 'Encode' + name >> beam.Map(lambda record: json.dumps(record, ensure_ascii=False).encode('utf-8'))
             | 'Publish' + name >> beam.io.WriteToPubSub(topic))


def build_streaming(pipeline, options):
    """Adds the streaming detection to `pipeline`; returns (alerts, dead letters)."""
    from pipelines.rare_runcommand import query_windows, semantics_of
    detection = options.view_as(DetectionOptions)
    rule = load_rule(detection.rule)
    semantics = semantics_of(detection)
    windows = query_windows(detection, rule, semantics)
    streams = read_streams(pipeline, options)
    rows = [read.rows for _, read in streams]
    dead_letters = [read.dead_letter for _, read in streams]
    detected = (rows | 'FlattenTables' >> beam.Flatten()
                | 'DetectInStream' >> DetectInStream(semantics, rule, windows,
                                                     parse_timespan(detection.allowed_lateness)))
    dead_letters.append(detected[DEAD_LETTER])
    all_dead_letters = dead_letters | 'FlattenDeadLetters' >> beam.Flatten()
    publish(options, detected[ALERTS], all_dead_letters)
    return detected[ALERTS], all_dead_letters
