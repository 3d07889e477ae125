"""Replays rows of the three tables into Kafka topics in event-time order, at N times real speed.

    python -m pipelines.replay --bootstrap_servers localhost:9092 \\
        --azure_activity AzureActivity.jsonl.gz --device_file_events DeviceFileEvents.jsonl.gz \\
        --device_events DeviceEvents.jsonl.gz [--speed 3600] [--late_fraction 0.02 --late_by 30m] \\
        [--disorder 2m] [--shape records|row] [--end_heartbeat_after 2d] [--report replay.json]

Each row (a JSON-lines file of Log Analytics rows: an export or ``tools/generate.py``'s output) becomes
one message on its table's topic, shaped as Log Analytics data export sends rows to Event Hubs
(``{"records": [row]}``; ``--shape row`` sends the bare row), with the row's TimeGenerated as the
message timestamp (CreateTime): the streaming detection's watermark follows it when told that the
timestamps are the events' own (``--kafka_timestamps event``; with Event Hubs' enqueue times, the
default, a partition read to its end would move the watermark to the wall clock, years past the rows).

Rows are sent in the order of their event time plus a random delay of up to ``--disorder`` (out of order
within that span), and a ``--late_fraction`` share of them ``--late_by`` later still (late data); the
wall-clock gap between two messages is their event-time gap divided by ``--speed``. At the end every
partition of every topic gets a heartbeat (key ``rare-runcommand:heartbeat``, no row) timestamped
``--end_heartbeat_after`` past the last row, which moves the watermark past the last windows.

``--report`` writes what was sent, and for every whole hour of event time the wall-clock moment its last
partition first received a message at or past it: from then on the watermark can pass that hour
(the benchmark measures alert latency from these moments).
"""

import argparse
import gzip
import json
import random
import sys
import time
import zlib

from transforms.detect.windows import parse_timespan
from transforms.read.ingest import parse_datetime_us
from transforms.read.schema import TABLES
from transforms.read.stream_sources import HEARTBEAT_KEY

HOUR_US = 3_600_000_000
TABLE_OPTIONS = {'AzureActivity': 'azure_activity', 'DeviceFileEvents': 'device_file_events',
                 'DeviceEvents': 'device_events'}


def read_rows(path):
    """(event time in µs, row JSON text) of a JSON-lines file (plain or gzip) of Log Analytics rows."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt', encoding='utf-8') as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            event_us = parse_datetime_us(json.loads(line).get('TimeGenerated') or '')
            if event_us is None:
                raise ValueError('%s: a row without a parsable TimeGenerated: %s' % (path, line[:200]))
            yield event_us, line


def schedule(rows_by_table, disorder_us, late_fraction, late_by_us, seed):
    """[(send time in event-time µs, table, event time µs, row text, sent late)] in sending order."""
    rng = random.Random(seed)
    planned = []
    for table, rows in rows_by_table.items():
        for event_us, text in rows:
            send_us = event_us + (rng.randrange(disorder_us + 1) if disorder_us else 0)
            late = bool(late_fraction) and rng.random() < late_fraction
            planned.append((send_us + (late_by_us if late else 0), table, event_us, text, late))
    planned.sort(key=lambda item: (item[0], item[1], item[2]))
    return planned


def message_value(text, shape):
    return ('{"records":[%s]}' % text if shape == 'records' else text).encode('utf-8')


def partition_of(text, partitions):
    return zlib.crc32(text.encode('utf-8')) % partitions


class WatermarkMoments:
    """For every whole hour of event time: the wall-clock moment at which every partition of every topic
    has received a message at or past it."""

    def __init__(self, partitions_by_topic):
        self._latest = {(topic, p): None for topic, count in partitions_by_topic.items() for p in range(count)}
        self._reached = {}
        self._next_hour = None

    def sent(self, topic, partition, event_us, wall):
        key = (topic, partition)
        if self._latest[key] is None or event_us > self._latest[key]:
            self._latest[key] = event_us
        if any(value is None for value in self._latest.values()):
            return
        low = min(self._latest.values())
        hour = low // HOUR_US * HOUR_US
        if self._next_hour is None:
            self._next_hour = hour
        while self._next_hour <= hour:
            self._reached[self._next_hour] = wall
            self._next_hour += HOUR_US

    def moments(self):
        return dict(self._reached)


def ensure_topics(admin_config, topics, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(admin_config)
    existing = admin.list_topics(timeout=30).topics
    wanted = [NewTopic(topic, num_partitions=partitions, replication_factor=1)
              for topic in topics if topic not in existing]
    for future in admin.create_topics(wanted).values() if wanted else ():
        future.result(timeout=30)
    return partitions_once_listed(lambda: admin.list_topics(timeout=30).topics, topics)


def partitions_once_listed(list_topics, topics, timeout_s=30.0, pause_s=0.2, clock=time.monotonic,
                           pause=time.sleep):
    """{topic: partitions} from the broker's metadata (`list_topics()`: {name: TopicMetadata}), asked
    again until every topic is listed with its partitions: a topic just created may be missing from
    the metadata of a broker that has not caught up yet. RuntimeError after `timeout_s`."""
    deadline = clock() + timeout_s
    while True:
        metadata = list_topics()
        missing = [topic for topic in topics
                   if topic not in metadata or metadata[topic].error is not None or not metadata[topic].partitions]
        if not missing:
            return {topic: len(metadata[topic].partitions) for topic in topics}
        if clock() >= deadline:
            raise RuntimeError('Kafka topics not listed with their partitions after %.0f s: %s'
                               % (timeout_s, ', '.join(missing)))
        pause(pause_s)


def replay(args, out=sys.stdout):
    from confluent_kafka import Producer
    config = {'bootstrap.servers': args.bootstrap_servers, 'linger.ms': 5}
    topics = {table: getattr(args, 'topic_' + TABLE_OPTIONS[table]) for table in TABLES}
    partitions = ensure_topics({'bootstrap.servers': args.bootstrap_servers}, sorted(set(topics.values())),
                               args.partitions)
    rows_by_table = {table: list(read_rows(getattr(args, TABLE_OPTIONS[table]))) for table in TABLES}
    plan = schedule(rows_by_table, parse_timespan(args.disorder), args.late_fraction,
                    parse_timespan(args.late_by), args.seed)
    producer = Producer(config)
    moments = WatermarkMoments({topic: partitions[topic] for topic in topics.values()})
    sent = {table: 0 for table in TABLES}
    late = 0
    started = time.monotonic()
    first_send_us = plan[0][0] if plan else 0
    max_event_us = 0
    for send_us, table, event_us, text, sent_late in plan:
        due = started + (send_us - first_send_us) / 1e6 / args.speed
        delay = due - time.monotonic()
        if delay > 0:
            producer.poll(0)
            time.sleep(delay)
        topic = topics[table]
        partition = partition_of(text, partitions[topic])
        producer.produce(topic, value=message_value(text, args.shape), key=None, partition=partition,
                         timestamp=event_us // 1000)
        moments.sent(topic, partition, event_us, time.time())
        sent[table] += 1
        late += sent_late
        max_event_us = max(max_event_us, event_us)
    producer.flush(60)
    heartbeat_us = max_event_us + parse_timespan(args.end_heartbeat_after)
    for topic, count in partitions.items():
        for partition in range(count):
            producer.produce(topic, value=b'', key=HEARTBEAT_KEY, partition=partition,
                             timestamp=heartbeat_us // 1000)
            moments.sent(topic, partition, heartbeat_us, time.time())
    producer.flush(60)
    report = {'sent': sent, 'late': late, 'heartbeat_event_time_us': heartbeat_us,
              'seconds': round(time.monotonic() - started, 3), 'partitions': partitions,
              'watermark_reached_at': {str(hour): wall for hour, wall in moments.moments().items()}}
    if args.report:
        with open(args.report, 'w', encoding='utf-8') as handle:
            json.dump(report, handle, indent=1)
    out.write('replayed %s in %.1f s (%d late), heartbeats at %d µs\n' % (
        ', '.join('%s %d' % item for item in sent.items()), report['seconds'], late, heartbeat_us))
    return report


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m pipelines.replay', description=__doc__.splitlines()[0])
    parser.add_argument('--bootstrap_servers', default='localhost:9092')
    for table, option in TABLE_OPTIONS.items():
        parser.add_argument('--' + option, required=True, help='JSON-lines file of %s rows (plain or .gz).' % table)
        parser.add_argument('--topic_' + option, default=option.replace('_', '-'),
                            help='Topic of the %s messages (default %s).' % (table, option.replace('_', '-')))
    parser.add_argument('--partitions', type=int, default=2, help='Partitions of topics this tool creates.')
    parser.add_argument('--speed', type=float, default=3600.0,
                        help='Event time replayed per second of wall-clock time (3600: an hour a second).')
    parser.add_argument('--disorder', default='0s', help='Rows are sent up to this much out of order.')
    parser.add_argument('--late_fraction', type=float, default=0.0, help='Share of rows sent late.')
    parser.add_argument('--late_by', default='30m', help='How much later late rows are sent.')
    parser.add_argument('--shape', choices=('records', 'row'), default='records')
    parser.add_argument('--end_heartbeat_after', default='2d',
                        help='Event time of the final heartbeats, after the last row.')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--report', default=None, help='Where to write the replay report (JSON).')
    args = parser.parse_args(argv)
    if args.speed <= 0 or not 0 <= args.late_fraction <= 1 or args.partitions < 1:
        parser.error('--speed must be positive, --late_fraction within [0, 1], --partitions at least 1')
    return args


def main(argv=None):
    replay(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    main()
