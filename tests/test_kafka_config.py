"""Kafka settings without a broker: the Event Hubs endpoint's client configuration and its secret, the
decoding of Kafka records, the alert messages, and the replay's schedule."""

import collections
import json
import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import window

from pipelines import kafka_options, replay
from pipelines.kafka_options import KafkaOptions
from transforms.read.dead_letter import DEAD_LETTER
from transforms.read.stream_sources import HEARTBEAT_KEY, PRODUCER_TIME_READ_URN, DecodeKafkaRecords, ReadKafkaTable
from transforms.write.kafka import keyed_json

SECRET = ('Endpoint=sb://acme-sec.servicebus.windows.net/;SharedAccessKeyName=detector;'
          'SharedAccessKey=c2VjcmV0IGtleSBvZiB0aGUgbmFtZXNwYWNl=')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENT_HUBS = ['--kafka_bootstrap_servers', 'acme-sec.servicebus.windows.net:9093',
              '--kafka_sasl_password_env', 'EVENTHUBS_CONNECTION_STRING']


def kafka(argv):
    return PipelineOptions(argv).view_as(KafkaOptions)


def test_event_hubs_endpoint_gets_sasl_ssl_plain_with_the_connection_string_from_the_environment():
    config = kafka_options.consumer_config(kafka(EVENT_HUBS), {'EVENTHUBS_CONNECTION_STRING': SECRET})
    assert config['bootstrap.servers'] == 'acme-sec.servicebus.windows.net:9093'
    assert config['security.protocol'] == 'SASL_SSL' and config['sasl.mechanism'] == 'PLAIN'
    assert config['sasl.jaas.config'] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="$ConnectionString" password="%s";' % SECRET)
    assert config['group.id'] == 'rare-runcommand' and config['auto.offset.reset'] == 'earliest'
    assert SECRET not in json.dumps(kafka_options.redacted(config))
    producer = kafka_options.producer_config(kafka(EVENT_HUBS), {'EVENTHUBS_CONNECTION_STRING': SECRET})
    assert producer['sasl.jaas.config'] == config['sasl.jaas.config'] and 'group.id' not in producer


def test_the_secret_can_come_from_a_file_and_quotes_are_escaped(tmp_path):
    secret_file = tmp_path / 'connection-string'
    secret_file.write_text('pa"ss\\word\n', encoding='utf-8')
    options = kafka(['--kafka_bootstrap_servers', 'h:9093', '--kafka_sasl_password_file', str(secret_file)])
    assert kafka_options.client_config(options, {})['sasl.jaas.config'].endswith('password="pa\\"ss\\\\word";')


def test_a_local_broker_needs_no_security():
    assert kafka_options.client_config(kafka(['--kafka_bootstrap_servers', 'localhost:9092']), {}) == {
        'bootstrap.servers': 'localhost:9092'}


def test_a_missing_secret_is_an_error_that_names_where_it_was_looked_for(tmp_path):
    with pytest.raises(kafka_options.KafkaSecretError, match='EVENTHUBS_CONNECTION_STRING'):
        kafka_options.client_config(kafka(EVENT_HUBS), {})
    options = kafka(['--kafka_bootstrap_servers', 'h:9093', '--kafka_sasl_password_file', str(tmp_path / 'none')])
    with pytest.raises(kafka_options.KafkaSecretError, match='--kafka_sasl_password_file'):
        kafka_options.client_config(options, {})


def test_the_options_hold_where_the_secret_is_never_the_secret():
    options = PipelineOptions(EVENT_HUBS + ['--streaming'])
    assert SECRET not in json.dumps(options.get_all_options(retain_unknown_options=True), default=str)


def test_java_steps_run_embedded_on_flink_and_in_beams_default_elsewhere():
    assert kafka_options.java_environment(PipelineOptions(['--runner', 'FlinkRunner'])) == 'EMBEDDED'
    assert kafka_options.java_environment(PipelineOptions(['--runner', 'DataflowRunner'])) is None
    assert kafka_options.java_environment(PipelineOptions(['--runner', 'FlinkRunner',
                                                           '--kafka_java_environment', 'PROCESS'])) == 'PROCESS'


def test_on_flink_each_read_of_a_partition_is_bounded_in_time_unless_turned_off():
    flink = PipelineOptions(['--runner', 'FlinkRunner', '--kafka_bootstrap_servers', 'localhost:9092'])
    assert kafka_options.read_seconds(flink) == 5
    config = kafka_options.consumer_config(flink.view_as(KafkaOptions), read_for_seconds=5)
    assert config['interceptor.classes'] == 'rarerun.kafka.BoundedPollInterceptor'
    assert config['rarerun.read.millis'] == '5000'
    assert kafka_options.read_seconds(PipelineOptions(['--runner', 'DataflowRunner'])) == 0
    assert kafka_options.read_seconds(PipelineOptions(['--runner', 'FlinkRunner', '--kafka_read_seconds', '0'])) == 0
    assert 'interceptor.classes' not in kafka_options.consumer_config(flink.view_as(KafkaOptions), read_for_seconds=0)


JAVA_SOURCES = os.path.join(REPO, 'templates', 'kafka', 'java', 'src', 'main', 'java')


def java_source(class_name):
    with open(os.path.join(JAVA_SOURCES, *class_name.split('.')) + '.java', encoding='utf-8') as handle:
        return handle.read()


def test_the_interceptor_class_is_built_into_the_job_server_under_the_name_the_consumer_is_given():
    text = java_source(kafka_options.BOUNDED_POLL_INTERCEPTOR)
    assert 'public static final String READ_MILLIS = "rarerun.read.millis";' in text
    # Both jars compile templates/kafka/java: the job server runs the classes, the expansion service
    # registers the producer-time read.
    for pom, sources in ((('flink', 'job-server'), '${project.basedir}/../../kafka/java/src/main/java'),
                         (('kafka', 'expansion-service'), '${project.basedir}/../java/src/main/java')):
        with open(os.path.join(REPO, 'templates', *pom, 'pom.xml'), encoding='utf-8') as handle:
            assert '<source>%s</source>' % sources in handle.read()


def test_event_timestamps_choose_the_producer_time_read_under_the_urn_its_java_registrar_gives():
    enqueue = ReadKafkaTable('AzureActivity', 'azure-activity', {'bootstrap.servers': 'b:9092'}, 'localhost:1')
    assert type(enqueue.kafka_read()).__name__ == 'ReadFromKafka'
    event = ReadKafkaTable('AzureActivity', 'azure-activity', {'bootstrap.servers': 'b:9092'}, 'localhost:1',
                           event_timestamps=True).kafka_read()
    assert event._urn == PRODUCER_TIME_READ_URN  # pylint: disable=protected-access
    from apache_beam.portability.api import external_transforms_pb2
    payload = external_transforms_pb2.ExternalConfigurationPayload.FromString(
        event._payload)  # pylint: disable=protected-access
    assert sorted(field.name for field in payload.schema.fields) == ['consumer_config', 'topics']
    assert 'public static final String URN = "%s";' % PRODUCER_TIME_READ_URN in java_source('rarerun.kafka.ProducerTimeRead')
    services = os.path.join(REPO, 'templates', 'kafka', 'java', 'src', 'main', 'resources', 'META-INF', 'services',
                            'org.apache.beam.sdk.expansion.ExternalTransformRegistrar')
    with open(services, encoding='utf-8') as handle:
        assert handle.read().split() == ['rarerun.kafka.ProducerTimeRead']


def test_kafka_timestamps_are_enqueue_times_unless_told_they_are_the_events_own():
    assert PipelineOptions([]).view_as(KafkaOptions).kafka_timestamps == 'enqueue'
    assert PipelineOptions(['--kafka_timestamps', 'event']).view_as(KafkaOptions).kafka_timestamps == 'event'
    with pytest.raises(SystemExit):
        PipelineOptions(['--kafka_timestamps', 'producer']).view_as(KafkaOptions)


KafkaRecord = collections.namedtuple('KafkaRecord', 'topic partition offset timestamp key value')


def decode(records):
    fn = DecodeKafkaRecords('AzureActivity')
    fn.setup()
    out = []
    for record in records:
        out.extend(fn.process(record))
    return out


def test_kafka_records_decode_to_timestamped_rows_with_bad_ones_dead_lettered_by_partition_and_offset():
    row = {'TimeGenerated': '2024-03-01T10:00:00Z', 'OperationNameValue': 'x', 'CorrelationId': 'c'}
    out = decode([
        KafkaRecord('aa', 1, 41, 0, None, json.dumps({'records': [row, {'Caller': 'no time'}]}).encode()),
        KafkaRecord('aa', 0, 7, 0, b'k', b'\xff not json'),
        KafkaRecord('aa', 1, 42, 0, HEARTBEAT_KEY, b''),
    ])
    rows = [item for item in out if isinstance(item, window.TimestampedValue)]
    dead = [item.value for item in out if getattr(item, 'tag', None) == DEAD_LETTER]
    assert len(rows) == 1 and rows[0].value[0] == 'AzureActivity'
    assert rows[0].timestamp.micros == 1709287200000000 and rows[0].value[1]['CorrelationId'] == 'c'
    assert sorted((d['source'], d['partition'], d['offset'], d['reason']) for d in dead) == [
        ('kafka://aa', 0, 7, 'invalid UTF-8'), ('kafka://aa', 1, 41, 'TimeGenerated missing or unparsable')]


def test_alert_messages_are_keyed_by_system_alert_id():
    key, value = keyed_json({'SystemAlertId': 'a-1', 'AlertName': 'x'}, 'SystemAlertId')
    assert key == b'a-1' and json.loads(value) == {'SystemAlertId': 'a-1', 'AlertName': 'x'}
    assert keyed_json({'table': None}, 'table')[0] == b''


def test_replay_schedule_keeps_event_order_within_the_disorder_and_sends_late_rows_later():
    rows = {'AzureActivity': [(minute * 60_000_000, 'a%d' % minute) for minute in range(200)],
            'DeviceEvents': [(minute * 60_000_000 + 1, 'e%d' % minute) for minute in range(200)]}
    plan = replay.schedule(rows, disorder_us=120_000_000, late_fraction=0.1, late_by_us=1_800_000_000, seed=1)
    assert len(plan) == 400 and [item[0] for item in plan] == sorted(item[0] for item in plan)
    late = [item for item in plan if item[4]]
    assert 20 <= len(late) <= 60
    for send_us, _, event_us, _, sent_late in plan:
        assert 0 <= send_us - event_us - (1_800_000_000 if sent_late else 0) <= 120_000_000
    assert replay.message_value('{"a":1}', 'records') == b'{"records":[{"a":1}]}'
    assert replay.message_value('{"a":1}', 'row') == b'{"a":1}'


def test_the_watermark_moment_of_an_hour_is_when_the_last_partition_reaches_it():
    moments = replay.WatermarkMoments({'t': 2})
    hour = replay.HOUR_US
    moments.sent('t', 0, 5 * hour + 10, wall=100.0)
    assert moments.moments() == {}                       # partition 1 has nothing yet
    moments.sent('t', 1, 5 * hour + 20, wall=101.0)
    assert moments.moments() == {5 * hour: 101.0}
    moments.sent('t', 0, 7 * hour, wall=102.0)
    assert moments.moments() == {5 * hour: 101.0}        # partition 1 still in hour 5
    moments.sent('t', 1, 8 * hour, wall=103.0)
    assert moments.moments() == {5 * hour: 101.0, 6 * hour: 103.0, 7 * hour: 103.0}


def test_streaming_on_flink_checkpoints_every_10s_and_finishes_bundles_before_each_barrier_by_default():
    from pipelines.rare_runcommand import with_stream_defaults  # pylint: disable=import-outside-toplevel
    flink = ['--streaming', '--runner', 'FlinkRunner']
    options = PipelineOptions(with_stream_defaults(flink)).get_all_options()
    assert options['checkpointing_interval'] == 10000
    assert options['finish_bundle_before_checkpointing'] is True
    given = PipelineOptions(with_stream_defaults(flink + ['--checkpointing_interval=2000'])).get_all_options()
    assert given['checkpointing_interval'] == 2000
    assert with_stream_defaults(['--runner', 'FlinkRunner']) == ['--runner', 'FlinkRunner']
    assert with_stream_defaults(['--streaming', '--runner', 'DataflowRunner']) == ['--streaming', '--runner',
                                                                                  'DataflowRunner']


class _TopicMetadata:
    def __init__(self, partitions, error=None):
        self.partitions = {number: None for number in range(partitions)}
        self.error = error


def test_topic_partitions_are_asked_again_until_every_topic_is_listed():
    answers = iter([{'a': _TopicMetadata(2)},  # 'b' just created, not listed yet
                    {'a': _TopicMetadata(2), 'b': _TopicMetadata(0, error='LEADER_NOT_AVAILABLE')},
                    {'a': _TopicMetadata(2), 'b': _TopicMetadata(3)}])
    now, pauses = [0.0], []

    def pause(seconds):
        pauses.append(seconds)
        now[0] += seconds

    assert replay.partitions_once_listed(lambda: next(answers), ['a', 'b'], clock=lambda: now[0],
                                         pause=pause) == {'a': 2, 'b': 3}
    assert len(pauses) == 2


def test_topic_partitions_give_up_after_the_timeout_with_the_missing_topics():
    now = [0.0]

    def pause(seconds):
        now[0] += seconds

    with pytest.raises(RuntimeError, match='after 5 s: b'):
        replay.partitions_once_listed(lambda: {'a': _TopicMetadata(1)}, ['a', 'b'], timeout_s=5, pause_s=1,
                                      clock=lambda: now[0], pause=pause)
    assert now[0] == 5
