"""The streaming detection for real: rows replayed into a Kafka broker, read by the pipeline on the local
Flink cluster, alerts published to a Kafka topic.

* A multi-day replay, out of order and with late rows, gives, once the watermark has passed the last
  window, the batch run's alerts (after the updates and withdrawals the stream emits), and its windows
  are evaluated while the topics keep receiving, each within a bound of the moment the watermark could
  pass its end; unusable messages reach the dead-letter topic with their topic, partition and offset.
* A TaskManager killed with SIGKILL mid-stream: the job restores from its last checkpoint and no alert is
  lost; an alert published twice has the same SystemAlertId and content (the duplicates are counted).

The broker (templates/kafka/local_broker.sh) and the cluster start once per session (conftest.py).
"""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from benchmarks.stream_latency import window_end_us
from flink_support import (BOOTSTRAP, FLINK_LOCAL_DIR, ROOT, RUN_TIMEOUT, cluster, rest, run_in_process,
                           running_jobs, cancel_job, taskmanager_running_a_task, wait_for)
from pipelines import replay
from pipelines.rare_runcommand import read_json_lines_output

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow]

EDGE = ROOT / 'tests' / 'golden' / 'data' / 'edge'
INPUTS = {'AzureActivity': EDGE / 'AzureActivity.jsonl.gz', 'DeviceFileEvents': EDGE / 'DeviceFileEvents.jsonl.gz',
          'DeviceEvents': EDGE / 'DeviceEvents.jsonl.gz'}
STREAM_ARGS = ['--streaming', '--runner', 'FlinkRunner', '--flink_master', 'localhost:8081',
               '--environment_type', 'EXTERNAL', '--environment_config', 'localhost:50000', '--parallelism', '2',
               '--kafka_bootstrap_servers', BOOTSTRAP, '--kafka_timestamps', 'event']
ALERT_WAIT = 420   # seconds for the stream's alerts to equal the batch alerts
LATENCY_BOUND = 30   # seconds from the moment the watermark can pass a window's end to its first alert


@pytest.fixture(scope='module')
def batch_alerts(tmp_path_factory):
    """{SystemAlertId: alert} of the batch run on the replayed rows (daily windows)."""
    output = tmp_path_factory.mktemp('batch')
    run_in_process(INPUTS, output)
    alerts = {alert['SystemAlertId']: alert for alert in read_json_lines_output(str(output), 'alerts')}
    assert len(alerts) == 35
    return alerts


class Topics:
    """Fresh topics for one test: the three tables, alerts and dead letters."""

    def __init__(self):
        suffix = uuid.uuid4().hex[:8]
        self.tables = {table: '%s-%s' % (option.replace('_', '-'), suffix)
                       for table, option in replay.TABLE_OPTIONS.items()}
        self.alerts = 'alerts-' + suffix
        self.dead_letters = 'dead-letters-' + suffix
        self.group = 'detection-' + suffix
        replay.ensure_topics({'bootstrap.servers': BOOTSTRAP},
                             list(self.tables.values()) + [self.alerts, self.dead_letters], 2)

    def pipeline_args(self):
        return STREAM_ARGS + [
            '--kafka_topic_azure_activity', self.tables['AzureActivity'],
            '--kafka_topic_device_file_events', self.tables['DeviceFileEvents'],
            '--kafka_topic_device_events', self.tables['DeviceEvents'],
            '--kafka_alerts_topic', self.alerts, '--kafka_dead_letter_topic', self.dead_letters,
            '--kafka_consumer_group', self.group]

    def replay_args(self, speed, **extra):
        argv = ['--bootstrap_servers', BOOTSTRAP, '--speed', str(speed)]
        for table, option in replay.TABLE_OPTIONS.items():
            argv += ['--' + option, str(INPUTS[table]), '--topic_' + option, self.tables[table]]
        for name, value in extra.items():
            argv += ['--' + name, str(value)]
        return replay.parse_args(argv)


class StreamingJob:
    """The detection launched with --streaming in a process of its own, and its Flink job."""

    def __init__(self, topics, log_path):
        known = running_jobs()
        self._log = open(log_path, 'w', encoding='utf-8')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'pipelines.rare_runcommand'] + topics.pipeline_args(),
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.job_id = wait_for(lambda: self._new_running_job(known), RUN_TIMEOUT, 'the streaming job to run',
                               self.process)

    def _new_running_job(self, known):
        assert self.process.poll() is None, 'the launcher exited: see its log'
        for job_id in running_jobs() - known:
            job = rest('/jobs/%s' % job_id)
            if job['status-counts'].get('RUNNING', 0) == len(job['vertices']):
                return job_id
        return None

    def stop(self):
        """Cancels the job and stops the launcher with SIGTERM; checks that the launcher exits by its
        own handler (143) and stops the job server it started."""
        try:
            if self.job_id in running_jobs():
                cancel_job(self.job_id)
        finally:
            job_servers = [pid for pid in child_pids(self.process.pid) if 'job-server' in command_line(pid)]
            self.process.terminate()
            try:
                returncode = self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                returncode = None
            self._log.close()
            left = [pid for pid in job_servers if 'job-server' in command_line(pid)]
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        assert returncode == 128 + signal.SIGTERM, 'the launcher did not exit by its SIGTERM handler'
        assert job_servers and not left, 'job servers left running after SIGTERM: %s' % left


def child_pids(pid):
    """The pids of a process's children (Linux /proc)."""
    pids = []
    for task in os.listdir('/proc/%d/task' % pid):
        with open('/proc/%d/task/%s/children' % (pid, task), encoding='ascii') as children:
            pids.extend(int(child) for child in children.read().split())
    return pids


def command_line(pid):
    """A live process's command line, or '' once it is gone (or a zombie)."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as cmdline:
            return cmdline.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except OSError:
        return ''


class TopicReader:
    """Reads a topic from its start in a thread; `messages` grows as they arrive."""

    def __init__(self, topic):
        from confluent_kafka import Consumer
        self._consumer = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'test-' + uuid.uuid4().hex,
                                   'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
        self._consumer.subscribe([topic])
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            message = self._consumer.poll(0.5)
            if message is not None and not message.error():
                self.messages.append(message)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def final_alerts(messages):
    """{SystemAlertId: alert} after applying the stream's withdrawals, and the number of duplicates (an
    alert published again with the same id)."""
    alerts, duplicates = {}, 0
    for message in messages:
        record = json.loads(message.value())
        assert message.key().decode() == record['SystemAlertId']
        if record.get('AlertStatus') == 'Withdrawn':
            alerts.pop(record['SystemAlertId'], None)
            continue
        if record['SystemAlertId'] in alerts:
            duplicates += 1
            assert alerts[record['SystemAlertId']] == record, 'one id, two different alerts'
        alerts[record['SystemAlertId']] = record
    return alerts, duplicates


def produce_bad_messages(topic, timestamp_ms):
    """Two messages no reader can use; returns their (partition, offset)."""
    from confluent_kafka import Producer
    producer = Producer({'bootstrap.servers': BOOTSTRAP})
    delivered = []
    for value in (b'not json at all', b'{"records": [{"OperationNameValue": "no time"}]}'):
        producer.produce(topic, value=value, partition=0, timestamp=timestamp_ms,
                         on_delivery=lambda error, message: delivered.append((message.partition(), message.offset())))
    assert producer.flush(30) == 0
    return sorted(delivered)


def first_alert_times(messages):
    """{window end (µs): wall time (s) the window's first alert reached the topic}."""
    first = {}
    for message in messages:
        record = json.loads(message.value())
        if record.get('AlertStatus') == 'Withdrawn':
            continue
        end = window_end_us(record)
        first[end] = min(first.get(end, float('inf')), message.timestamp()[1] / 1000.0)
    return first


def test_a_replay_gives_the_batch_alerts_window_by_window_and_bad_messages_reach_the_dead_letter_topic(
        flink_cluster, kafka_broker, batch_alerts, tmp_path):
    topics = Topics()
    job = StreamingJob(topics, tmp_path / 'launcher.log')
    alerts = TopicReader(topics.alerts)
    dead_letters = TopicReader(topics.dead_letters)
    try:
        bad = produce_bad_messages(topics.tables['AzureActivity'], 1709251200000)
        # An hour of logs a second: the four days take about 95 s, a daily window can close every 24 s.
        report = replay.replay(topics.replay_args(3600, disorder='10m', late_fraction=0.05, late_by='30m',
                                                  seed=3), out=io.StringIO())
        replay_ended = time.time()
        assert report['late'] > 10
        wait_for(lambda: final_alerts(alerts.messages)[0] == batch_alerts, ALERT_WAIT,
                 'the stream to give the batch alerts', job.process)
        wait_for(lambda: len(dead_letters.messages) >= len(bad), 60, 'the dead letters', job.process)
    finally:
        job.stop()
        alerts.close()
        dead_letters.close()
    # Windows are evaluated while the topics keep receiving: each window the watermark could pass (every
    # partition sent a row at or after its end) LATENCY_BOUND or more before the replay ended had its
    # first alert on the topic within LATENCY_BOUND of that moment.
    could_pass = {int(hour): wall for hour, wall in report['watermark_reached_at'].items()}
    first = first_alert_times(alerts.messages)
    early = sorted(end for end in first if end in could_pass and could_pass[end] < replay_ended - LATENCY_BOUND)
    # (The windows ending on 2 and 3 March: Beam's own Flink operator let at most the first of them out
    # while the replay ran, benchmarks/README.md.)
    assert len(early) >= 2, 'fewer than two windows with alerts could close %d s before the replay ended: %s' % (
        LATENCY_BOUND, {end: round(could_pass[end] - replay_ended, 1) for end in first if end in could_pass})
    latencies = {end: round(first[end] - could_pass[end], 1) for end in early}
    sys.stderr.write('window latencies (s): %s\n' % latencies)
    assert all(latency < LATENCY_BOUND for latency in latencies.values()), latencies
    records = [json.loads(message.value()) for message in dead_letters.messages]
    assert sorted((r['partition'], r['offset']) for r in records) == bad
    assert {r['source'] for r in records} == {'kafka://' + topics.tables['AzureActivity']}
    assert {r['reason'] for r in records} == {'not JSON', 'TimeGenerated missing or unparsable'}


def test_a_taskmanager_killed_mid_stream_loses_no_alert(flink_cluster, kafka_broker, batch_alerts, tmp_path):
    topics = Topics()
    job = StreamingJob(topics, tmp_path / 'launcher.log')
    alerts = TopicReader(topics.alerts)
    replaying = threading.Thread(target=replay.replay, args=(topics.replay_args(6000, disorder='5m'),),
                                 kwargs={'out': io.StringIO()}, daemon=True)
    try:
        replaying.start()
        # Once a checkpoint holds some of the stream and an alert is out: kill the TaskManager running it.
        wait_for(lambda: rest('/jobs/%s/checkpoints' % job.job_id)['counts']['completed'] >= 2 and alerts.messages,
                 RUN_TIMEOUT, 'a completed checkpoint and a first alert', job.process)
        victim = taskmanager_running_a_task(job.job_id)
        os.kill(int((FLINK_LOCAL_DIR / (victim + '.pid')).read_text()), signal.SIGKILL)
        wait_for(lambda: final_alerts(alerts.messages)[0] == batch_alerts, ALERT_WAIT,
                 'the stream to give the batch alerts after the restore', job.process)
        replaying.join(timeout=RUN_TIMEOUT)
        history = rest('/jobs/%s/exceptions' % job.job_id)['exceptionHistory']['entries']
        assert history, 'the job failed over after its TaskManager was killed'
        assert rest('/jobs/%s/checkpoints' % job.job_id)['latest']['restored'], 'restored from a checkpoint'
    finally:
        job.stop()
        alerts.close()
        assert cluster('start') == 0   # the killed TaskManager back, for the tests after this one
    _, duplicates = final_alerts(alerts.messages)
    sys.stderr.write('alerts published again after the restore: %d\n' % duplicates)
