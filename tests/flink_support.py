"""What the tests that run on the local Flink cluster share: the cluster's script and address, the
detection's command line, and the outputs of a run in comparable form."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = ROOT / 'templates' / 'flink' / 'local_cluster.sh'
FLINK_LOCAL_DIR = Path(os.environ.get('FLINK_LOCAL_DIR', ROOT / '.flink-local'))
REST = 'http://localhost:8081'
FLINK_ARGS = ['--runner', 'FlinkRunner', '--flink_master', 'localhost:8081', '--environment_type', 'EXTERNAL',
              '--environment_config', 'localhost:50000', '--parallelism', '2']
RUN_TIMEOUT = 600          # seconds: one pipeline run on the cluster (about a minute here)
CLUSTER_TIMEOUT = 900      # seconds: the first start downloads Flink and builds the job server


def rest(path):
    """The Flink REST API's JSON answer to GET `path`."""
    with urllib.request.urlopen(REST + path, timeout=10) as response:
        return json.load(response)


def cluster(command):
    """Runs `local_cluster.sh <command>`; returns its exit status."""
    return subprocess.run(['bash', str(CLUSTER_SCRIPT), command], capture_output=command == 'status',
                          timeout=CLUSTER_TIMEOUT).returncode


def finished_jobs():
    return {job['jid'] for job in rest('/jobs/overview')['jobs'] if job['state'] == 'FINISHED'}


def detection_command(inputs, output_dir, *extra):
    argv = [sys.executable, '-m', 'pipelines.rare_runcommand', '--output_dir', str(output_dir)]
    for table, option in rare_runcommand.TABLE_OPTIONS.items():
        argv += ['--' + option, str(inputs[table])]
    return argv + list(extra)


def run_on_flink(inputs, output_dir, *extra):
    completed = subprocess.run(detection_command(inputs, output_dir, *FLINK_ARGS, *extra), cwd=ROOT,
                               capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def run_in_process(inputs, output_dir, *extra):
    argv = ['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(output_dir)]
    for table, option in rare_runcommand.TABLE_OPTIONS.items():
        argv += ['--' + option, str(inputs[table])]
    rare_runcommand.run(argv + list(extra))


def outputs(output_dir):
    """{prefix: sorted canonical records} of a run's alerts, dead letters and window summary."""
    found = {}
    for prefix in ('alerts', 'dead_letter', 'windows'):
        records = rare_runcommand.read_json_lines_output(str(output_dir), prefix)
        found[prefix] = sorted(json.dumps(record, sort_keys=True) for record in records)
    return found


def detection_counters(output_dir):
    """Per-table and detection counters of a run's summary.json."""
    summary = json.loads((Path(output_dir) / 'summary.json').read_text(encoding='utf-8'))
    return summary['tables'], summary['detection']


BROKER_SCRIPT = ROOT / 'templates' / 'kafka' / 'local_broker.sh'
BOOTSTRAP = 'localhost:9092'


def broker(command):
    """Runs `local_broker.sh <command>`; returns its exit status."""
    return subprocess.run(['bash', str(BROKER_SCRIPT), command], capture_output=command == 'status',
                          timeout=CLUSTER_TIMEOUT).returncode


def running_jobs():
    return {job['jid'] for job in rest('/jobs/overview')['jobs'] if job['state'] == 'RUNNING'}


def cancel_job(job_id):
    request = urllib.request.Request(REST + '/jobs/%s?mode=cancel' % job_id, method='PATCH')
    with urllib.request.urlopen(request, timeout=10):
        pass


def wait_for(condition, timeout, what, process):
    """Polls `condition` until it gives a value, waiting on `process` between polls (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass


def taskmanager_running_a_task(job_id):
    """A TaskManager (its resource id, taskmanager-<n>) running a task of the job (not one holding only
    finished ones, such as an Impulse's: killing that one would not fail the job); else None."""
    for vertex in rest('/jobs/%s' % job_id)['vertices']:
        for manager in rest('/jobs/%s/vertices/%s/taskmanagers' % (job_id, vertex['id']))['taskmanagers']:
            if manager.get('status') == 'RUNNING' and manager.get('taskmanager-id', '').startswith('taskmanager-'):
                return manager['taskmanager-id']
    return None
