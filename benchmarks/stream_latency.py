"""Latency and sustained rate of the streaming detection on the local Flink cluster, fed from Kafka.

    templates/flink/local_cluster.sh start && templates/kafka/local_broker.sh start
    python -m benchmarks.stream_latency --rows 200000 --days 7 --speeds 3600,14400 [--name NAME]

For each speed (event-time seconds replayed per wall-clock second) it generates (once, cached) a
realistic data set with ``tools/generate.py``, creates fresh topics, starts the streaming detection on
the cluster, replays the rows with ``pipelines.replay`` and reads the alerts topic until every daily
window has been evaluated (the replay ends with heartbeats that close the last windows). It reports:

* the replay's rate (rows per second) and whether the job kept up (the last window's alerts arrived
  within a bound after the watermark could pass it);
* per alert, the latency from the moment the watermark could pass its window's end (when the replay had
  sent every partition of every topic a message at or past that end: ``pipelines.replay``'s report) to
  the alert's message on the alerts topic (its Kafka timestamp, set by the producer in the job);
* the alerts compared with the batch run on the same rows.

Results go to ``benchmarks/results/<name>.json``.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone

from benchmarks.run_benchmark import DEFAULT_DATA_ROOT, RESULTS_DIR, ensure_dataset, table_paths
from pipelines import replay

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP = 'localhost:9092'
REST = 'http://localhost:8081'
FLINK = ['--runner', 'FlinkRunner', '--flink_master', 'localhost:8081', '--environment_type', 'EXTERNAL',
         '--environment_config', 'localhost:50000', '--parallelism', '2']


def rest(path):
    with urllib.request.urlopen(REST + path, timeout=10) as response:
        return json.load(response)


def running_jobs():
    return {job['jid'] for job in rest('/jobs/overview')['jobs'] if job['state'] == 'RUNNING'}


def batch_alerts(paths, work_dir):
    output = os.path.join(work_dir, 'batch')
    argv = [sys.executable, '-m', 'pipelines.rare_runcommand', '--output_dir', output, '--scan', 'relevant']
    for table, option in replay.TABLE_OPTIONS.items():
        argv += ['--' + option, paths[table]]
    subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
    alerts = {}
    for name in sorted(os.listdir(output)):
        if name.startswith('alerts-'):
            with open(os.path.join(output, name), encoding='utf-8') as handle:
                for line in handle:
                    alert = json.loads(line)
                    alerts[alert['SystemAlertId']] = alert
    return alerts


class AlertReader(threading.Thread):
    def __init__(self, topic):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer
        self._consumer = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'bench-' + uuid.uuid4().hex,
                                   'auto.offset.reset': 'earliest'})
        self._consumer.subscribe([topic])
        self.messages = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            message = self._consumer.poll(0.5)
            if message is not None and not message.error():
                self.messages.append((message.timestamp()[1] / 1000.0, json.loads(message.value())))
        self._consumer.close()


class WatermarkSampler(threading.Thread):
    """Samples every vertex's smallest input watermark (Flink's REST API) every `period` seconds while
    the job runs: where the watermark is held, if it is."""

    def __init__(self, job_id, period=2.0):
        super().__init__(daemon=True)
        self._job_id = job_id
        self._period = period
        self.samples = []   # (wall time, {vertex name: smallest input watermark in ms, or None})
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(self._period):
            try:
                vertices = rest('/jobs/%s' % self._job_id)['vertices']
                sample = {}
                for vertex in vertices:
                    marks = [float(mark['value']) for mark in
                             rest('/jobs/%s/vertices/%s/watermarks' % (self._job_id, vertex['id']))]
                    sample[vertex['name'][:80]] = min(marks) if marks else None
                self.samples.append((time.time(), sample))
            except OSError:
                continue


def watermark_lags(samples, replay_start):
    """Per vertex, its input watermark (as event time) at each sample, in seconds after the replay
    started: [(seconds, {vertex: ISO time or None})], vertices by their first sample's order."""
    def iso(millis):
        if millis is None or millis < 0 or millis > 253402300799000:
            return None if millis is None else ('-inf' if millis < 0 else '+inf')
        return datetime.fromtimestamp(millis / 1000.0, timezone.utc).strftime('%Y-%m-%dT%H:%M')
    return [[round(wall - replay_start, 1), {name: iso(mark) for name, mark in sample.items()}]
            for wall, sample in samples]


def final(messages):
    alerts = {}
    for _, record in messages:
        if record.get('AlertStatus') == 'Withdrawn':
            alerts.pop(record['SystemAlertId'], None)
        else:
            alerts[record['SystemAlertId']] = record
    return alerts


def window_end_us(alert):
    return int(datetime.fromisoformat(alert['QueryPeriodEnd'].replace('Z', '+00:00')).timestamp() * 1e6)


def measure(paths, speed, expected, work_dir, timeout, extra_args=()):
    suffix = uuid.uuid4().hex[:8]
    topics = {table: '%s-%s' % (option.replace('_', '-'), suffix) for table, option in replay.TABLE_OPTIONS.items()}
    alerts_topic = 'alerts-' + suffix
    replay.ensure_topics({'bootstrap.servers': BOOTSTRAP}, list(topics.values()) + [alerts_topic], 2)
    argv = [sys.executable, '-m', 'pipelines.rare_runcommand', '--streaming'] + FLINK + [
        '--kafka_bootstrap_servers', BOOTSTRAP, '--kafka_timestamps', 'event', '--kafka_alerts_topic', alerts_topic,
        '--kafka_consumer_group', 'bench-' + suffix] + list(extra_args)
    for table, option in replay.TABLE_OPTIONS.items():
        argv += ['--kafka_topic_' + option, topics[table]]
    known = running_jobs()
    log = open(os.path.join(work_dir, 'launcher-%s.log' % suffix), 'w', encoding='utf-8')
    launcher = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    reader = AlertReader(alerts_topic)
    reader.start()
    job_id = sampler = None
    try:
        deadline = time.monotonic() + 600
        while job_id is None:
            fresh = running_jobs() - known
            for candidate in fresh:
                job = rest('/jobs/%s' % candidate)
                if job['status-counts'].get('RUNNING', 0) == len(job['vertices']):
                    job_id = candidate
            if launcher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('the streaming job did not start; see %s' % log.name)
            time.sleep(1)
        sampler = WatermarkSampler(job_id)
        sampler.start()
        argv = ['--bootstrap_servers', BOOTSTRAP, '--speed', str(speed), '--report',
                os.path.join(work_dir, 'replay-%s.json' % suffix)]
        for table, option in replay.TABLE_OPTIONS.items():
            argv += ['--' + option, paths[table], '--topic_' + option, topics[table]]
        report = replay.replay(replay.parse_args(argv))
        replay_end = time.time()
        deadline = time.monotonic() + timeout
        while final(reader.messages) != expected and time.monotonic() < deadline:
            time.sleep(1)
        complete = final(reader.messages) == expected
    finally:
        reader.stopping.set()
        reader.join(timeout=10)
        if sampler is not None:
            sampler.stopping.set()
            sampler.join(timeout=10)
        if job_id and job_id in running_jobs():
            urllib.request.urlopen(urllib.request.Request(REST + '/jobs/%s?mode=cancel' % job_id,
                                                          method='PATCH'), timeout=10)
        launcher.terminate()
        launcher.wait(timeout=60)
        log.close()
    moments = {int(hour): wall for hour, wall in report['watermark_reached_at'].items()}
    replay_start = replay_end - report['seconds']
    latencies, first_alert = [], {}
    for published, record in reader.messages:
        if record.get('AlertStatus') == 'Withdrawn':
            continue
        end = window_end_us(record)
        first_alert[end] = min(published, first_alert.get(end, published))
        if end in moments:
            latencies.append(published - moments[end])
    # Per window with alerts: when (seconds after the replay started) the watermark could pass its end,
    # and when its first alert arrived.
    windows = [{'end': datetime.fromtimestamp(end / 1e6, timezone.utc).strftime('%Y-%m-%dT%H:%MZ'),
                'watermark_could_pass_s': round(moments[end] - replay_start, 1) if end in moments else None,
                'first_alert_s': round(first_alert[end] - replay_start, 1)}
               for end in sorted(first_alert)]
    rows = sum(report['sent'].values())
    return {
        'speed': speed,
        'rows': rows,
        'replay_seconds': report['seconds'],
        'rows_per_s': round(rows / report['seconds']),
        'alerts_equal_batch': complete,
        'alert_messages': len(reader.messages),
        'seconds_after_replay_until_complete': round(max(p for p, _ in reader.messages) - replay_end, 1)
        if reader.messages else None,
        'latency_s': {
            'median': round(statistics.median(latencies), 2) if latencies else None,
            'p90': round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 2) if latencies else None,
            'max': round(max(latencies), 2) if latencies else None,
            'n': len(latencies),
        },
        'windows': windows,
        'watermarks': watermark_lags(sampler.samples, replay_start),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.stream_latency', description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=200000)
    parser.add_argument('--days', type=int, default=7)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--speeds', default='3600,14400')
    parser.add_argument('--timeout', type=float, default=600, help='seconds to wait for the alerts after the replay')
    parser.add_argument('--name', default=None)
    parser.add_argument('--pipeline-args', default='',
                        help='more options of the streaming detection, as one string (e.g. "--kafka_read_seconds 2")')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    args = parser.parse_args(argv)
    directory, info = ensure_dataset(args.data_root, 'realistic', args.rows, args.seed, args.days)
    paths = table_paths(directory)
    work_dir = os.path.join(os.path.dirname(directory), 'stream-runs', '%d' % time.time())
    os.makedirs(work_dir, exist_ok=True)
    expected = batch_alerts(paths, work_dir)
    print('batch: %d alerts over %d rows' % (len(expected), info['total_rows']))
    runs = []
    for speed in [float(value) for value in args.speeds.split(',')]:
        result = measure(paths, speed, expected, work_dir, args.timeout, shlex.split(args.pipeline_args))
        result['pipeline_args'] = args.pipeline_args
        runs.append(result)
        print(json.dumps(result))
    name = args.name or 'stream-latency-%d' % args.rows
    report = {'name': name, 'created': datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
              'dataset': info, 'batch_alerts': len(expected), 'runs': runs}
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, name + '.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1)
    print('written: benchmarks/results/%s.json' % name)


if __name__ == '__main__':
    main()
