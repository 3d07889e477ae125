"""The output folder: one run at a time (the lock), one whole run in it (staging, then a swap),
nothing left behind by a failed run, and the fingerprint store replaced without a gap."""

import json
import os
import socket
import subprocess
import sys

import pytest
from apache_beam.io.filesystems import FileSystems

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from transforms.detect import baseline
from transforms.write import output_folder
from transforms.write.output_folder import FolderLocked, OutputLock
from transforms.write.run_report import rarest_fingerprints

RULE_ID = '5239248b-abfb-4c6a-8177-b104ade5db56'
PREVIOUS = ['alerts-00000-of-00002.jsonl', 'alerts-00001-of-00002.jsonl', 'dead_letter-00000-of-00003.avro',
            'windows-00001-of-00002.jsonl', 'sentinel_dead_letter-00000-of-00001.jsonl', 'report.html',
            'summary.json']
NOT_OURS = ['alerts.jsonl', 'notes.txt', 'windows-latest.jsonl']


def fill(folder, names, text='{"previous": true}\n'):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(text)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def dead_pid():
    """The PID of a process that has ended."""
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait(timeout=30)
    return child.pid


# -------------------------------------------------------------------------------------------- swap

def test_publish_swaps_every_series_and_the_report_and_leaves_other_files(tmp_path):
    fill(tmp_path, PREVIOUS + NOT_OURS)
    staging = tmp_path / '.rare-runcommand-run-1'
    new = ['alerts-00000-of-00001.jsonl', 'dead_letter-00000-of-00001.jsonl', 'windows-00000-of-00001.jsonl',
           'report.html', 'summary.json']
    fill(staging, new, '{"new": true}\n')
    output_folder.publish(str(tmp_path), str(staging))
    assert listing(tmp_path) == sorted(new + NOT_OURS)
    assert all((tmp_path / name).read_text() == '{"new": true}\n' for name in new)
    assert all((tmp_path / name).read_text() == '{"previous": true}\n' for name in NOT_OURS)


def test_the_next_run_finishes_a_swap_a_kill_interrupted(tmp_path):
    # Killed after the old files were deleted and the first new file moved in.
    fill(tmp_path, ['notes.txt', 'alerts-00000-of-00001.jsonl'], '{"new": true}\n')
    staging = tmp_path / '.rare-runcommand-run-1'
    fill(staging, ['windows-00000-of-00001.jsonl', 'summary.json'], '{"new": true}\n')
    (tmp_path / output_folder.JOURNAL_NAME).write_text(json.dumps({
        'staging': str(staging), 'files': ['alerts-00000-of-00001.jsonl', 'windows-00000-of-00001.jsonl',
                                           'summary.json']}))
    assert output_folder.recover(str(tmp_path))
    assert listing(tmp_path) == ['alerts-00000-of-00001.jsonl', 'notes.txt', 'summary.json',
                                 'windows-00000-of-00001.jsonl']
    assert not output_folder.recover(str(tmp_path))


def test_leftovers_of_failed_runs_are_cleared(tmp_path):
    fill(tmp_path / '.rare-runcommand-run-old' / 'beam-temp-alerts-1', ['x'])
    fill(tmp_path / 'beam-temp-alerts-2f3e', ['x'])
    fill(tmp_path, ['summary.json', 'notes.txt'])
    cleared = output_folder.clear_leftovers(str(tmp_path))
    assert sorted(os.path.basename(p.rstrip('/')) for p in cleared) == ['.rare-runcommand-run-old',
                                                                          'beam-temp-alerts-2f3e']
    assert listing(tmp_path) == ['notes.txt', 'summary.json']


# -------------------------------------------------------------------------------------------- lock

def test_a_second_lock_on_the_folder_is_refused_with_the_holder(tmp_path):
    with OutputLock(str(tmp_path)) as first:
        lock_file = json.loads((tmp_path / output_folder.LOCK_NAME).read_text())
        assert lock_file['pid'] == os.getpid() and lock_file['host'] == socket.gethostname()
        with pytest.raises(FolderLocked, match='in use by another run: process %d on host %s'
                           % (os.getpid(), socket.gethostname())):
            OutputLock(str(tmp_path)).acquire()
        assert first.taken_over is None
    assert not (tmp_path / output_folder.LOCK_NAME).exists()
    with OutputLock(str(tmp_path)):   # released: free again
        pass


def test_a_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    stale = {'pid': dead_pid(), 'host': socket.gethostname(), 'started': '2024-03-01T00:00:00+00:00', 'run': 'x'}
    (tmp_path / output_folder.LOCK_NAME).write_text(json.dumps(stale))
    with OutputLock(str(tmp_path)) as lock:
        assert lock.taken_over == stale
        assert json.loads((tmp_path / output_folder.LOCK_NAME).read_text())['pid'] == os.getpid()


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    other = {'pid': dead_pid(), 'host': 'another-host.example', 'started': '2024-03-01T00:00:00+00:00', 'run': 'x'}
    (tmp_path / output_folder.LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(FolderLocked, match='another-host.example'):
        OutputLock(str(tmp_path)).acquire()


def test_a_lock_held_by_another_live_process_is_refused_then_free_once_it_is_killed(tmp_path):
    code = ('import sys; sys.path[:0] = [%r]\nfrom transforms.write.output_folder import OutputLock\n'
            'lock = OutputLock(%r); lock.acquire(); print("held", flush=True); sys.stdin.read()'
            % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), str(tmp_path)))
    child = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'held'
        with pytest.raises(FolderLocked, match='process %d' % child.pid):
            OutputLock(str(tmp_path)).acquire()
    finally:
        child.kill()   # killed: it never releases the lock
        child.wait(timeout=30)
    with OutputLock(str(tmp_path)) as lock:
        assert lock.taken_over['pid'] == child.pid


def test_a_second_run_into_a_locked_folder_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    fill(tmp_path, ['summary.json'])
    with OutputLock(str(tmp_path)):
        monkeypatch.setattr('sys.argv', ['rare-runcommand', '--sample', '--output_dir', str(tmp_path)])
        with pytest.raises(SystemExit) as exit_info:
            rare_runcommand.main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith('rare-runcommand: error: %s is in use by another run: process %d on host %s'
                            % (tmp_path, os.getpid(), socket.gethostname()))
    assert error.count('\n') == 1
    assert listing(tmp_path) == ['summary.json']   # the previous run untouched, no staging left


# ------------------------------------------------------------------------------------- whole runs

def run(output, *args):
    rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--sample', '--output_dir', str(output)] + list(args))


@pytest.mark.slow
def test_a_failed_run_leaves_the_previous_outputs_whole_and_nothing_else(tmp_path, monkeypatch):
    fill(tmp_path, PREVIOUS + NOT_OURS)

    def fail(record):
        raise RuntimeError('simulated worker failure')
    monkeypatch.setattr('transforms.write.files.to_json_line', fail)
    with pytest.raises(Exception, match='simulated worker failure'):
        run(tmp_path)
    assert listing(tmp_path) == sorted(PREVIOUS + NOT_OURS)
    assert all((tmp_path / name).read_text() == '{"previous": true}\n' for name in PREVIOUS)


@pytest.mark.slow
def test_a_run_takes_over_a_stale_lock_and_clears_what_failed_runs_left(tmp_path):
    stale = {'pid': dead_pid(), 'host': socket.gethostname(), 'started': '2024-03-01T00:00:00+00:00', 'run': 'x'}
    fill(tmp_path, PREVIOUS)
    (tmp_path / output_folder.LOCK_NAME).write_text(json.dumps(stale))
    fill(tmp_path / '.rare-runcommand-run-0ld' / 'beam-temp-alerts-1', ['x'])
    fill(tmp_path / 'beam-temp-windows-7', ['x'])
    run(tmp_path)
    assert listing(tmp_path) == ['alerts-00000-of-00001.jsonl', 'dead_letter-00000-of-00001.jsonl', 'report.html',
                                 'summary.json', 'windows-00000-of-00001.jsonl']
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['alert_files'] == [str(tmp_path / 'alerts-00000-of-00001.jsonl')]


# ---------------------------------------------------------------------------------------- baseline

def test_the_store_is_renamed_over_never_deleted_first(tmp_path, monkeypatch):
    store = tmp_path / 'store.jsonl'
    store.write_text('old\n')
    deleted = []
    monkeypatch.setattr(FileSystems, 'delete', staticmethod(lambda paths: deleted.extend(paths)))
    record = {'rule_id': RULE_ID, 'semantics': 'sentinel', 'fingerprint': 'ab', 'first_seen': 'x', 'last_seen': 'x',
              'count': 1, 'example': {}}
    baseline.write_store(str(store), [record])
    assert deleted == [] and json.loads(store.read_text()) == record
    assert listing(tmp_path) == ['store.jsonl']


def test_a_missing_baseline_in_is_an_error_unless_it_is_the_first_run(tmp_path, monkeypatch, capsys):
    store = tmp_path / 'store.jsonl'
    monkeypatch.setattr('sys.argv', ['rare-runcommand', '--sample', '--output_dir', str(tmp_path / 'out'), '--history_days', '7',
                                     '--baseline_in', str(store), '--baseline_out', str(store)])
    with pytest.raises(SystemExit) as exit_info:
        rare_runcommand.main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert 'the fingerprint store %s does not exist' % store in error and '--baseline_init' in error
    assert not (tmp_path / 'out').exists()


def test_replacing_an_existing_store_without_reading_it_is_an_error(tmp_path):
    store = tmp_path / 'store.jsonl'
    store.write_text('')
    with pytest.raises(baseline.BaselineError, match='without its history'):
        run(tmp_path / 'out', '--baseline_out', str(store))


@pytest.mark.slow
def test_the_first_run_of_a_baseline_says_so(tmp_path):
    store = tmp_path / 'store.jsonl'
    run(tmp_path / 'out', '--history_days', '7', '--baseline_in', str(store), '--baseline_out', str(store),
        '--baseline_init')
    first = [r['count'] for r in baseline.read_store(str(store), RULE_ID, 'sentinel')]
    assert len(first) == 9   # the sample day's fingerprints (seven of them seen once: its seven alerts)
    run(tmp_path / 'out', '--history_days', '7', '--baseline_in', str(store), '--baseline_out', str(store))
    assert [r['count'] for r in baseline.read_store(str(store), RULE_ID, 'sentinel')] == [2 * c for c in first]


def test_a_store_that_is_not_a_store_is_a_clear_error(tmp_path):
    store = tmp_path / 'store.jsonl'
    store.write_text('[' * 1000 + '\n')
    with pytest.raises(baseline.BaselineError, match='is not a fingerprint store'):
        baseline.read_store(str(store), RULE_ID, 'sentinel')


# ---------------------------------------------------------------------------------------- report

def test_rarest_fingerprints_choose_the_same_example_in_any_file_order():
    def alert(vm, start):
        return {'QueryPeriodStart': start, 'QueryPeriodEnd': 'e', 'QueryResult': {
            'ScriptFingerprintHash': 'f1', 'Prevalence': 50.0, 'PowershellScriptCommands': ['A'],
            'PowershellFileName': 'script1.ps1', 'VirtualMachineName': vm, 'Caller': 'c'}}
    alerts = [alert('vm2', '2024-03-01'), alert('vm1', '2024-03-01'), alert('vm0', '2024-03-02')]
    # One worker writes them in one order, two workers in another: the same example either way.
    first = rarest_fingerprints(alerts)
    assert first == rarest_fingerprints(list(reversed(alerts))) == rarest_fingerprints(alerts[1:] + alerts[:1])
    assert first[0]['VirtualMachineName'] == 'vm1' and first[0]['alerts'] == 3
