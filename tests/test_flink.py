"""The detection on a live Flink session cluster: same outputs as the in-process runner, a lost
TaskManager survived, a missing cluster reported at once.

The cluster is templates/flink/local_cluster.sh's: a JobManager, two TaskManagers (own JVMs, two slots
each) and a Beam SDK worker pool. The `flink_cluster` fixture starts it once for the session (the first
start fetches Flink from PyPI and builds the job server with Maven) and stops it at the end, unless it
was running before the tests. The pipeline is submitted as a user would, with Beam's own options, by
`python -m pipelines.rare_runcommand` in a process of its own.
"""

import json
import os
import signal
import socket
import subprocess

import pytest

from flink_support import (FLINK_ARGS, FLINK_LOCAL_DIR, ROOT, RUN_TIMEOUT, cluster, detection_command,
                           detection_counters, finished_jobs, outputs, rest, run_in_process, run_on_flink,
                           taskmanager_running_a_task, wait_for)
from tools import generate

GOLDEN = ROOT / 'tests' / 'golden'

# Lines no reader can use, put into the generated tables: the dead letters must come out the same,
# with the same line numbers, whichever runner splits the files.
BAD_LINES = [b'not json at all', b'[1, 2]', b'{"TimeGenerated": "yesterday"}',
             b'{"TimeGenerated": "2024-03-01T10:00:00Z", "Caller": "\xff\xfe"}']


@pytest.fixture(scope='module')
def generated_inputs(tmp_path_factory):
    """Three days of the dense mix, some 30,000 rows, with unusable lines in every table."""
    directory = tmp_path_factory.mktemp('generated')
    generate.generate(str(directory), days=3, seed=12, mix='dense', rows=30000)
    inputs = {}
    for table in generate.TABLES:
        path = directory / (table + '.jsonl')
        lines = path.read_bytes().splitlines()
        for index, bad in enumerate(BAD_LINES):
            lines.insert((index + 1) * len(lines) // (len(BAD_LINES) + 1), bad)
        path.write_bytes(b'\n'.join(lines) + b'\n')
        inputs[table] = path
    return inputs


@pytest.fixture(scope='module')
def generated_reference(generated_inputs, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp('generated-in-process')
    run_in_process(generated_inputs, output_dir)
    found = outputs(output_dir)
    assert len(found['alerts']) > 10 and len(found['dead_letter']) == 3 * len(BAD_LINES)
    assert len(found['windows']) == 3
    return found, detection_counters(output_dir)


def golden_case(name):
    case = next(c for c in json.loads((GOLDEN / 'cases.json').read_text())['cases'] if c['name'] == name)
    return case, {table: GOLDEN / path for table, path in case['inputs'].items()}


def expected_query_results(case):
    """The KQL's rows of a golden case, as the alerts' QueryResult plus their window."""
    rows = [json.loads(line) for line in (GOLDEN / case['expected']).read_text().splitlines() if line]
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def query_results(alerts):
    rows = []
    for text in alerts:
        alert = json.loads(text)
        row = dict(alert['QueryResult'], QueryPeriodStart=alert['QueryPeriodStart'],
                   QueryPeriodEnd=alert['QueryPeriodEnd'])
        rows.append(json.dumps(row, sort_keys=True))
    return sorted(rows)


@pytest.mark.flink
@pytest.mark.slow
def test_golden_multi_day_case_on_flink_gives_the_kql_rows(flink_cluster, tmp_path):
    """With parallelism 4 the job takes every slot of both TaskManagers, which share one worker pool."""
    case, inputs = golden_case('sliding_2d_1d')
    before = finished_jobs()
    run_on_flink(inputs, tmp_path / 'flink', '--query_period', '2d', '--query_frequency', '1d', '--parallelism', '4')
    run_in_process(inputs, tmp_path / 'local', '--query_period', '2d', '--query_frequency', '1d')
    on_flink = outputs(tmp_path / 'flink')
    assert query_results(on_flink['alerts']) == expected_query_results(case)
    assert on_flink == outputs(tmp_path / 'local')
    assert detection_counters(tmp_path / 'flink') == detection_counters(tmp_path / 'local')
    assert len(finished_jobs() - before) == 1, 'the REST API lists the finished job'


@pytest.mark.flink
@pytest.mark.slow
def test_generated_days_on_flink_equal_the_in_process_run(flink_cluster, generated_inputs,
                                                         generated_reference, tmp_path):
    run_on_flink(generated_inputs, tmp_path)
    assert outputs(tmp_path) == generated_reference[0]
    assert detection_counters(tmp_path) == generated_reference[1]
    assert not list(tmp_path.glob('beam-temp-*')), 'the file sinks finalized and removed their temp folders'


def _job_of(process, known):
    """The id of the job this run submitted (the one not in `known`), once the REST API lists it."""
    for job in rest('/jobs/overview')['jobs']:
        if job['jid'] not in known:
            return job['jid']
    assert process.poll() is None, 'the run ended before its job appeared: %s' % process.stderr.read()[-3000:]
    return None


def _taskmanager_with_running_tasks(job_id):
    """Once a fifth of the job's tasks have finished: a TaskManager (its resource id, taskmanager-<n>)
    that runs at least one task of the job; else None."""
    job = rest('/jobs/%s' % job_id)
    assert job['state'] not in ('FINISHED', 'FAILED', 'CANCELED'), 'the job ended before the kill'
    counts = job['status-counts']
    if counts.get('FINISHED', 0) * 5 < sum(counts.values()):
        return None
    return taskmanager_running_a_task(job_id)


@pytest.mark.flink
@pytest.mark.slow
def test_a_taskmanager_killed_mid_run_loses_and_repeats_nothing(flink_cluster, generated_inputs,
                                                                generated_reference, tmp_path):
    known = {job['jid'] for job in rest('/jobs/overview')['jobs']}
    process = subprocess.Popen(detection_command(generated_inputs, tmp_path, *FLINK_ARGS), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job_id = wait_for(lambda: _job_of(process, known), RUN_TIMEOUT, 'the job to be submitted', process)
        victim = wait_for(lambda: _taskmanager_with_running_tasks(job_id), RUN_TIMEOUT,
                          'a TaskManager to run a task of the job', process)
        pid = int((FLINK_LOCAL_DIR / (victim + '.pid')).read_text())
        os.kill(pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=RUN_TIMEOUT)
        assert process.returncode == 0, stderr[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        # Bring the cluster back to full strength for the tests after this one.
        assert cluster('start') == 0
    history = rest('/jobs/%s/exceptions' % job_id).get('exceptionHistory', {}).get('entries', [])
    assert history, 'the job failed over at least once after its TaskManager was killed'
    assert rest('/jobs/%s' % job_id)['state'] == 'FINISHED'
    assert outputs(tmp_path) == generated_reference[0]
    assert detection_counters(tmp_path) == generated_reference[1]


def _free_port():
    with socket.socket() as probe:
        probe.bind(('localhost', 0))
        return probe.getsockname()[1]


def test_a_missing_cluster_is_one_line_and_exit_status_2(tmp_path):
    """No cluster behind --flink_master: the run stops before any work, with one line on stderr."""
    case, inputs = golden_case('edge_1d')
    argv = detection_command(inputs, tmp_path / 'out', '--runner', 'FlinkRunner', '--flink_master',
                             'localhost:%d' % _free_port(), '--environment_type', 'EXTERNAL',
                             '--environment_config', 'localhost:%d' % _free_port())
    completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if 'apitools' not in line]
    assert len(lines) == 1 and 'no Flink cluster answers at localhost:' in lines[0], completed.stderr
    assert not (tmp_path / 'out').exists()


def test_a_missing_worker_pool_is_one_line_and_exit_status_2(tmp_path):
    """A Flink REST endpoint that answers but no worker pool at --environment_config."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    import threading

    class Overview(BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            body = json.dumps({'taskmanagers': 2, 'slots-total': 4}).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(('localhost', 0), Overview)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        case, inputs = golden_case('edge_1d')
        pool = _free_port()
        argv = detection_command(inputs, tmp_path / 'out', '--runner', 'FlinkRunner', '--flink_master',
                                 'localhost:%d' % server.server_address[1], '--environment_type', 'EXTERNAL',
                                 '--environment_config', 'localhost:%d' % pool)
        completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if 'apitools' not in line]
    assert len(lines) == 1 and 'no Beam SDK worker pool answers at localhost:%d' % pool in lines[0], completed.stderr



def test_a_job_server_jar_option_naming_no_file_is_one_line_and_exit_status_2(tmp_path):
    case, inputs = golden_case('edge_1d')
    argv = detection_command(inputs, tmp_path / 'out', '--runner', 'FlinkRunner', '--flink_master', '[local]',
                             '--flink_job_server_jar', str(tmp_path / 'no-such.jar'))
    completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if 'apitools' not in line]
    assert lines == ['rare-runcommand: error: --flink_job_server_jar: no such file: %s' % (tmp_path / 'no-such.jar')]


def test_a_job_server_jar_neither_cached_nor_downloadable_is_a_preflight_error(tmp_path, monkeypatch):
    """Without the jar in Beam's cache, the download address is asked (HEAD) before any work."""
    import urllib.error
    import urllib.request

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.utils.subprocess_server import JavaJarServer

    from pipelines import preflight

    asked = []

    def refuse(request, timeout):
        asked.append((request.get_method(), request.full_url, timeout))
        raise urllib.error.HTTPError(request.full_url, 404, 'Not Found', None, None)

    monkeypatch.setattr(JavaJarServer, 'JAR_CACHE', str(tmp_path))
    monkeypatch.setattr(urllib.request, 'urlopen', refuse)
    options = PipelineOptions(['--runner', 'FlinkRunner', '--flink_version', '1.19'])
    with pytest.raises(preflight.PreflightError, match='neither at .*beam-runners-flink-1.19-job-server-'):
        preflight.check_job_server_jar(options)
    assert len(asked) == 1 and asked[0][0] == 'HEAD' and asked[0][2] == preflight.TIMEOUT_SECONDS
    name = asked[0][1].rsplit('/', 1)[1]
    (tmp_path / name).write_bytes(b'jar')
    preflight.check_job_server_jar(options)   # now in the cache: no error, no request
    assert len(asked) == 1
