"""SDK workers forked from the command's process (pipelines/forked_workers.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a process of its own that runs a pipeline with two worker processes
def test_workers_are_forked_from_the_zygote_and_report_their_exit_status(tmp_path):
    probe = subprocess.run([sys.executable, str(REPO / 'tests' / 'forked_worker_probe.py'), str(tmp_path)],
                           cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                           timeout=300, check=False)
    assert probe.returncode == 0, probe.stderr[-3000:]
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert report['safe_before'] and report['runner'] == 'ForkedWorkersRunner'
    assert not report['safe_with_a_thread'], 'forking is refused while another thread runs'
    rows = [json.loads(line) for path in tmp_path.glob('squares*') for line in path.read_text().splitlines()]
    assert sorted(square for square, _, _ in rows) == [x * x for x in range(40)]
    workers = {pid for _, pid, _ in rows}
    assert report['probe'] not in workers
    assert {parent for _, _, parent in rows} == {report['zygote']}, 'every stage ran in a worker forked from the zygote'
    assert report['zygote_ended'], 'the zygote ends with the run'
    assert report['failing_status'] == 1 and 'CONTROL_API_SERVICE_DESCRIPTOR' in report['failing_stderr']
