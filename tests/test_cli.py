"""The command line: --help lists the detection's own options, and the bundled sample runs.

One run of the bundled sample day (module fixture) into a folder where an earlier run left its
outputs: its alerts, what it prints, its run report, and that nothing of the earlier run survives.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER

ROOT = Path(__file__).resolve().parents[1]

# An earlier run with two shards per output, and its completion marker.
STALE = ['alerts-00000-of-00002.jsonl', 'alerts-00001-of-00002.jsonl', 'windows-00001-of-00002.jsonl',
         'dead_letter-00000-of-00003.avro', 'sentinel_dead_letter-00000-of-00001.jsonl', 'summary.json',
         'report.html']


def test_help_lists_the_detection_options(capsys):
    assert rare_runcommand.run(['--help']) is None
    out = capsys.readouterr().out
    for option in ('--azure_activity', '--semantics', '--query_period', '--start', '--scan', '--history_days',
                   '--allowed_lateness', '--output_dir', '--sinks'):
        assert option in out


@pytest.fixture(scope='module')
def sample_run(tmp_path_factory):
    """(output folder, what the run printed) of the bundled sample, run over an earlier run's outputs."""
    output = tmp_path_factory.mktemp('sample')
    for name in STALE:
        (output / name).write_text('{"stale": true}\n')
    (output / 'notes.txt').write_text('not ours')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--sample', '--output_dir', str(output)])
    return output, printed.getvalue()


def test_bundled_sample_gives_its_expected_alerts(sample_run):
    output, printed = sample_run
    with open(rare_runcommand.SAMPLE_DIR + '/expected_alerts.jsonl', encoding='utf-8') as handle:
        expected = sorted(json.dumps(json.loads(line), sort_keys=True) for line in handle if line.strip())
    got = []
    for alert in rare_runcommand.read_json_lines_output(str(output), 'alerts'):
        row = dict(alert['QueryResult'], QueryPeriodStart=alert['QueryPeriodStart'],
                   QueryPeriodEnd=alert['QueryPeriodEnd'])
        got.append(json.dumps(row, sort_keys=True))
    assert sorted(got) == expected and len(expected) == 7
    assert printed.count('ALERT ') == 7 and 'Windows: 1 evaluated, 1 with alerts' in printed


def test_a_rerun_replaces_every_output_of_the_previous_run(sample_run):
    output, _ = sample_run
    names = sorted(p.name for p in output.iterdir())
    assert names == ['alerts-00000-of-00001.jsonl', 'dead_letter-00000-of-00001.jsonl', 'notes.txt', 'report.html',
                     'summary.json', 'windows-00000-of-00001.jsonl']
    alerts = list(rare_runcommand.read_json_lines_output(str(output), 'alerts'))
    assert len(alerts) == 7 and all('stale' not in alert for alert in alerts)


def test_the_run_summary_and_the_report_agree(sample_run):
    output, printed = sample_run
    summary = json.loads((output / 'summary.json').read_text())
    assert summary['detection']['alerts'] == 7 and len(summary['alerts_per_window']) == 1
    for table, counted in summary['tables'].items():
        line = next(line for line in printed.splitlines() if line.strip().startswith(table))
        assert ('read %9d' % counted['read']) in line and ('outside range %6d' % counted['outside_range']) in line
    assert '7</span> alerts' in (output / 'report.html').read_text()


def test_the_run_prints_its_output_files(sample_run):
    output, printed = sample_run
    listed = printed[printed.index('Outputs in %s:' % output):].splitlines()[1:]
    assert [line.strip() for line in listed] == [str(output / name) for name in (
        'alerts-00000-of-00001.jsonl', 'dead_letter-00000-of-00001.jsonl', 'report.html', 'summary.json',
        'windows-00000-of-00001.jsonl')]


def _command(*argv, cwd):
    env = {key: value for key, value in os.environ.items() if key != 'PYTHONWARNINGS'}
    env['PYTHONPATH'] = str(ROOT)
    return subprocess.run([sys.executable, '-m', 'pipelines.rare_runcommand'] + list(argv), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_a_plain_run_writes_nothing_but_its_own_lines(tmp_path):
    # Not a terminal: no progress line; no warning of Beam or of other libraries.
    completed = _command('--sample', '--output_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert completed.returncode == 0 and completed.stderr == ''
    assert completed.stdout.count('ALERT ') == 7 and str(tmp_path / 'out' / 'report.html') in completed.stdout


# Installed as sitecustomize: Beam's first import logs and warns, as a library may while it loads.
NOISY_BEAM = """
import builtins, logging, sys, warnings
real_import = builtins.__import__
def noisy_import(name, *args, **kwargs):
    if name == 'apache_beam' and 'apache_beam' not in sys.modules:
        logging.warning('apitools not found')
        warnings.warn('deprecated')
    return real_import(name, *args, **kwargs)
builtins.__import__ = noisy_import
"""
COMMAND = os.path.join(os.path.dirname(sys.executable), 'rare-runcommand')


@pytest.mark.parametrize('debug', [False, True])
@pytest.mark.parametrize('command', ['module', 'installed'])
def test_library_warnings_are_silenced_before_beam_loads(tmp_path, command, debug):
    if command == 'installed' and not os.path.exists(COMMAND):
        pytest.skip('the rare-runcommand command is not installed in this environment')
    (tmp_path / 'sitecustomize.py').write_text(NOISY_BEAM)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    argv = ([sys.executable, '-m', 'pipelines.rare_runcommand'] if command == 'module' else [COMMAND])
    completed = subprocess.run(argv + ['--help'] + (['--debug'] if debug else []), cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0 and '--sample' in completed.stdout
    assert ('apitools not found' in completed.stderr) is debug
    assert debug or completed.stderr == ''
