"""Options of the streaming detection on Kafka, and the Kafka client settings made from them.

Azure Event Hubs speaks the Kafka protocol: point ``--kafka_bootstrap_servers`` at
``<namespace>.servicebus.windows.net:9093`` and give the namespace's connection string as the SASL
password, through an environment variable or a file, never on the command line: the options, the
pipeline's display data and the logs name only where the secret is. (Beam's KafkaIO does carry the
client settings, secret included, inside the pipeline it submits, as any Kafka consumer needs them.)
"""

import os

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

JAVA_ENVIRONMENTS = ('EMBEDDED', 'DOCKER', 'PROCESS')
EVENT_HUBS_USERNAME = '$ConnectionString'
KAFKA_IO_EXPANSION_TARGET = 'sdks:java:io:expansion-service:shadowJar'
KAFKA_TIMESTAMPS = ('enqueue', 'event')


class KafkaOptions(PipelineOptions):
    """Options of ``python -m pipelines.rare_runcommand --streaming`` reading Kafka topics."""

    @classmethod
    def _add_argparse_args(cls, parser):
        kafka = parser.add_argument_group('streaming from Kafka / Event Hubs')
        kafka.add_argument(
            '--kafka_bootstrap_servers', default=None,
            help='Kafka bootstrap servers (host:port,...); for Event Hubs <namespace>.servicebus.windows.net:9093. '
                 'With --streaming, the three tables are read from the --kafka_topic_* topics.')
        for table_option, table in (('azure_activity', 'AzureActivity'),
                                    ('device_file_events', 'DeviceFileEvents'),
                                    ('device_events', 'DeviceEvents')):
            kafka.add_argument('--kafka_topic_' + table_option, default=None,
                               help='Topic (event hub) of the %s messages.' % table)
        kafka.add_argument('--kafka_alerts_topic', default=None,
                           help='Topic the alerts (and their withdrawals) are published to, as JSON keyed by '
                                'SystemAlertId.')
        kafka.add_argument('--kafka_dead_letter_topic', default=None,
                           help='Topic the dead letters are published to, as JSON keyed by table.')
        kafka.add_argument('--kafka_consumer_group', default='rare-runcommand',
                           help='Consumer group of the reads (Event Hubs: a consumer group of each event hub).')
        kafka.add_argument('--kafka_start', choices=('earliest', 'latest'), default='earliest',
                           help='Where a consumer group without committed offsets starts.')
        kafka.add_argument('--kafka_sasl_password_env', default=None,
                           help='Name of the environment variable holding the SASL PLAIN password (Event '
                                "Hubs: the namespace's connection string). Implies SASL_SSL.")
        kafka.add_argument('--kafka_sasl_password_file', default=None,
                           help='File holding the SASL PLAIN password (a mounted secret). Implies SASL_SSL.')
        kafka.add_argument('--kafka_sasl_username', default=EVENT_HUBS_USERNAME,
                           help='SASL PLAIN username; Event Hubs expects the literal $ConnectionString.')
        kafka.add_argument('--kafka_expansion_service', default=None,
                           help="host:port of a running Beam Java expansion service with KafkaIO; default: start "
                                "Beam's I/O expansion service jar from Beam's jar cache.")
        kafka.add_argument('--checkpointing_interval', type=int, default=None,
                           help="Beam's Flink option: milliseconds between checkpoints of the streaming job "
                                '(default with --runner FlinkRunner --streaming: 10000).')
        kafka.add_argument('--kafka_timestamps', choices=KAFKA_TIMESTAMPS, default='enqueue',
                           help="What the messages' timestamps are, which the watermark follows: 'enqueue' "
                                '(the default: when each message was sent or enqueued, as Event Hubs sets them; '
                                'a partition read to its end moves to the wall clock) or '
                                "'event' (the producer set the events' own times, as pipelines.replay does; a "
                                'partition that receives nothing holds the watermark until it does).')
        kafka.add_argument('--finish_bundle_before_checkpointing', action='store_true', default=None,
                           help="Beam's Flink option: a checkpoint finishes the open bundles before its barrier "
                                'instead of buffering their output past it, which the watermark could overtake '
                                '(on by default with --runner FlinkRunner --streaming).')
        kafka.add_argument('--kafka_read_seconds', type=int, default=None,
                           help='On Flink: seconds one run of the Kafka read of a partition passes records on '
                                'before it checkpoints, so that the watermark advances while the topics keep '
                                "receiving (default 5 with --runner FlinkRunner; 0: off, for a job server "
                                "without this project's rarerun.kafka.BoundedPollInterceptor).")
        kafka.add_argument('--kafka_java_environment', choices=JAVA_ENVIRONMENTS, default=None,
                           help='Where the runner runs the Java Kafka steps: EMBEDDED (in the Flink TaskManagers; '
                                "the default with --runner FlinkRunner), DOCKER (Beam's Java SDK image; the "
                                'default elsewhere) or PROCESS.')


class KafkaSecretError(ValueError):
    """The SASL password cannot be read from where the options say it is."""


def sasl_password(options, environ=None):
    """The SASL password from the environment variable or file the options name, or None."""
    environ = os.environ if environ is None else environ
    if options.kafka_sasl_password_env:
        value = environ.get(options.kafka_sasl_password_env)
        if not value:
            raise KafkaSecretError('the environment variable %s named by --kafka_sasl_password_env is not set'
                                   % options.kafka_sasl_password_env)
        return value
    if options.kafka_sasl_password_file:
        try:
            with open(options.kafka_sasl_password_file, encoding='utf-8') as handle:
                value = handle.read().strip()
        except OSError as error:
            raise KafkaSecretError('--kafka_sasl_password_file: %s' % (error.strerror or error)) from None
        if not value:
            raise KafkaSecretError('--kafka_sasl_password_file %s is empty' % options.kafka_sasl_password_file)
        return value
    return None


def _jaas_quoted(text):
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


def client_config(options, environ=None):
    """Kafka client properties common to the consumer and the producer."""
    config = {'bootstrap.servers': options.kafka_bootstrap_servers}
    password = sasl_password(options, environ)
    if password is not None:
        config.update({
            'security.protocol': 'SASL_SSL',
            'sasl.mechanism': 'PLAIN',
            'sasl.jaas.config': 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                                'username=%s password=%s;' % (_jaas_quoted(options.kafka_sasl_username),
                                                              _jaas_quoted(password)),
        })
    return config


BOUNDED_POLL_INTERCEPTOR = 'rarerun.kafka.BoundedPollInterceptor'
DEFAULT_FLINK_READ_SECONDS = 5


def read_seconds(options):
    """--kafka_read_seconds, or its default: 5 on Flink, 0 (off) elsewhere."""
    kafka = options.view_as(KafkaOptions)
    if kafka.kafka_read_seconds is not None:
        return kafka.kafka_read_seconds
    return DEFAULT_FLINK_READ_SECONDS if is_flink(options) else 0


def consumer_config(options, environ=None, read_for_seconds=0):
    """The consumer properties; with `read_for_seconds`, each run of KafkaIO's read of a partition ends
    after that long (templates/kafka/java/src/main/java/rarerun/kafka/BoundedPollInterceptor.java:
    Flink's portable runner never makes the read checkpoint, and the watermark moves only when it does)."""
    config = dict(client_config(options, environ), **{
        'group.id': options.kafka_consumer_group,
        'auto.offset.reset': options.kafka_start,
    })
    if read_for_seconds > 0:
        config.update({'interceptor.classes': BOUNDED_POLL_INTERCEPTOR,
                       'rarerun.read.millis': str(read_for_seconds * 1000)})
    return config


def producer_config(options, environ=None):
    return client_config(options, environ)


def redacted(config):
    """The config with its secret replaced, for messages and logs."""
    return {key: ('<redacted>' if key == 'sasl.jaas.config' else value) for key, value in config.items()}


def is_flink(options):
    return 'flink' in (options.view_as(StandardOptions).runner or '').lower()


def java_environment(options):
    kafka = options.view_as(KafkaOptions)
    if kafka.kafka_java_environment:
        return kafka.kafka_java_environment
    return 'EMBEDDED' if is_flink(options) else None


def expansion_service(options):
    """The expansion service of ReadFromKafka/WriteToKafka: the given address, or Beam's I/O expansion
    service jar (from Beam's jar cache), started with the Java environment the runner needs."""
    kafka = options.view_as(KafkaOptions)
    if kafka.kafka_expansion_service:
        return kafka.kafka_expansion_service
    from apache_beam.transforms.external import BeamJarExpansionService
    environment = java_environment(options)
    append = ['--defaultEnvironmentType=' + environment] if environment else None
    return BeamJarExpansionService(KAFKA_IO_EXPANSION_TARGET, append_args=append)
