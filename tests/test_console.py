"""The console of a local run: the progress line (a terminal only, at most once a second), the
windows folded, the alerts capped, hostile strings escaped."""

import io

from pipelines import console


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


FILES = [('AzureActivity', '/x/a.json', 2000), ('DeviceEvents', '/x/b.json', 1000)]


def test_progress_line_at_most_once_a_second_on_a_terminal():
    clock, stream = Clock(), Terminal()
    state = {'done': ({'/x/a.json': 2500}, 1234)}   # a range may end past the file: clipped
    progress = console.Progress(FILES, stream=stream, clock=clock, snapshot=lambda: state['done'])
    clock.now += 1.0
    assert progress.tick()
    assert stream.getvalue() == '\rreading: 1 of 2 files, 2.0 kB of 3.0 kB, 1,234 records, 0:00:01 elapsed'
    clock.now += 0.5
    assert not progress.tick()
    state['done'] = ({'/x/a.json': 2000, '/x/b.json': 1000}, 5000)
    clock.now += 0.6
    assert progress.tick()
    assert stream.getvalue().endswith('\rreading: 2 of 2 files, 3.0 kB of 3.0 kB, 5,000 records, 0:00:02 elapsed')


def test_a_runner_reading_elsewhere_shows_the_time_only():
    clock, stream = Clock(), Terminal()
    progress = console.Progress(FILES, stream=stream, clock=clock, snapshot=lambda: ({}, 0), reads_here=False)
    clock.now += 75
    assert progress.tick() and stream.getvalue() == '\rrunning: 2 files, 3.0 kB, 0:01:15 elapsed'


def test_no_progress_line_when_not_a_terminal():
    stream = io.StringIO()
    with console.Progress(FILES, stream=stream, snapshot=lambda: ({}, 0)) as progress:
        assert not progress.tick()
    assert stream.getvalue() == ''


def window(n, alerts=0):
    return {'QueryPeriodStart': '2024-03-01T%02d:%02d:00.000000Z' % divmod(n * 5, 60),
            'QueryPeriodEnd': '2024-03-01T%02d:%02d:00.000000Z' % divmod(n * 5 + 5, 60),
            'AzureActivity': 1, 'DeviceFileEvents': 0, 'DeviceEvents': 2, 'alerts': alerts}


def test_many_windows_fold_to_the_first_the_last_and_those_with_alerts():
    windows = [window(n, alerts=int(n in (40, 41, 100))) for n in range(287)]
    lines = console.window_lines(windows)
    assert lines[0] == 'Windows: 287 evaluated, 3 with alerts'
    assert lines[1:] == [
        '    [2024-03-01T00:00:00.000000Z, 2024-03-01T00:05:00.000000Z)  rows 1 / 0 / 2  alerts 0',
        '    ... 39 windows without alerts',
        '    [2024-03-01T03:20:00.000000Z, 2024-03-01T03:25:00.000000Z)  rows 1 / 0 / 2  alerts 1',
        '    [2024-03-01T03:25:00.000000Z, 2024-03-01T03:30:00.000000Z)  rows 1 / 0 / 2  alerts 1',
        '    ... 58 windows without alerts',
        '    [2024-03-01T08:20:00.000000Z, 2024-03-01T08:25:00.000000Z)  rows 1 / 0 / 2  alerts 1',
        '    ... 185 windows without alerts',
        '    [2024-03-01T23:50:00.000000Z, 2024-03-01T23:55:00.000000Z)  rows 1 / 0 / 2  alerts 0']


def test_many_windows_with_alerts_are_capped_with_where_they_all_are():
    windows = [window(n, alerts=n % 2) for n in range(100)]
    lines = console.window_lines(windows, ['out/windows-00000-of-00001.jsonl'])
    assert lines[0] == 'Windows: 100 evaluated, 50 with alerts'
    assert sum(' alerts 1' in line for line in lines) == console.MAX_WINDOW_LINES + 1   # and the last window
    assert lines[-3:] == ['    ... 75 windows (37 with alerts)',
                          '    [2024-03-01T08:15:00.000000Z, 2024-03-01T08:20:00.000000Z)  rows 1 / 0 / 2  alerts 1',
                          '    every window in out/windows-00000-of-00001.jsonl']


def test_few_windows_are_all_listed():
    assert len(console.window_lines([window(n) for n in range(5)])) == 6


def alert(n, caller='eve@contoso.com'):
    return {'QueryPeriodStart': '2024-03-01T00:00:00.000000Z', 'QueryPeriodEnd': '2024-03-02T00:00:00.000000Z',
            'QueryResult': {'StartTime': '2024-03-01T01:%02d:00Z' % n, 'VirtualMachineName': 'vm%d' % n,
                            'Caller': caller, 'PowershellFileName': 'script%d.ps1' % n,
                            'PowershellScriptCommands': ['GET-DATE', 'OUT-FILE']}}


def test_alerts_one_line_each_capped_with_where_the_others_are():
    lines = console.alert_lines([alert(n) for n in range(25)], ['out/alerts-00000-of-00001.jsonl'])
    assert lines[0] == 'Alerts: 25'
    assert lines[1] == ('ALERT [2024-03-01 00:00, 2024-03-02 00:00)  vm0  by eve@contoso.com  script0.ps1: '
                        'GET-DATE, OUT-FILE')
    assert sum(line.startswith('ALERT ') for line in lines) == console.MAX_ALERT_LINES
    assert lines[-1] == '  5 more in out/alerts-00000-of-00001.jsonl'


def test_terminal_escapes_and_direction_overrides_in_the_data_are_escaped():
    line = console.alert_lines([alert(1, caller='eve\x1b[2J\u202egpj.exe')], [])[1]
    assert '\x1b' not in line and '\u202e' not in line
    assert 'by eve\\u001b[2J\\u202egpj.exe' in line


def test_no_window_says_why():
    assert console.window_lines([], outside_range=2989) == [
        'Windows: 0 evaluated, 0 with alerts', '    no window: every row read is outside --start/--end (2989 rows)']
    assert console.window_lines([])[1] == '    no window: no row was parsed'


def test_dead_letters_per_file_and_reason_most_first():
    from transforms.read.sources import DEAD_LETTERS_BY_FILE, file_counter_name  # pylint: disable=import-outside-toplevel
    counters = {DEAD_LETTERS_BY_FILE: {file_counter_name('DeviceEvents', '/x/a.csv', 'not a DeviceEvents record'): 325,
                                       file_counter_name('AzureActivity', '/x/b.json', 'not JSON'): 2}}
    assert console.dead_letter_lines(counters, ['out/dead_letter-00000-of-00001.jsonl']) == [
        'Dead letters: 327',
        '          325  DeviceEvents /x/a.csv: not a DeviceEvents record',
        '            2  AzureActivity /x/b.json: not JSON',
        '    records in out/dead_letter-00000-of-00001.jsonl']
    assert console.dead_letter_lines({}) == []


def test_the_outcome_of_a_run_that_wrote_avro_alerts_only(tmp_path):
    import fastavro  # pylint: disable=import-outside-toplevel
    from pipelines.rare_runcommand import print_outcome  # pylint: disable=import-outside-toplevel
    from transforms.detect.alerts import make_alert, query_result  # pylint: disable=import-outside-toplevel
    from transforms.detect.rule import load_rule  # pylint: disable=import-outside-toplevel
    from transforms.write.files import alert_to_avro, load_schema  # pylint: disable=import-outside-toplevel
    row = {'StartTime': 1_709_287_200_000_000, 'EndTime': 1_709_287_260_000_000, 'PowershellFileName': 'script1.ps1',
           'VirtualMachineName': 'vm1', 'Caller': 'alice@contoso.com', 'CallerIpAddress': '10.0.0.1',
           'PowershellScriptCommands': ['GET-PROCESS'], 'PowershellFileSize': 120, 'ScriptFingerprintHash': 'ab',
           'Prevalence': 100.0, 'Scope': '/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm1'}
    alert = make_alert([query_result(row)], load_rule(), 'sentinel', '2024-03-01T00:00:00.000000Z',
                       '2024-03-02T00:00:00.000000Z')
    with open(tmp_path / 'alerts-00000-of-00001.avro', 'wb') as handle:
        fastavro.writer(handle, fastavro.parse_schema(load_schema('alert.avsc')), [alert_to_avro(alert)])
    printed = io.StringIO()
    print_outcome({}, str(tmp_path), printed)
    lines = printed.getvalue().splitlines()
    assert 'Alerts: 1' in lines and 'Windows: 0 evaluated, 0 with alerts' in lines
    assert ('ALERT [2024-03-01 00:00, 2024-03-02 00:00)  vm1  by alice@contoso.com  script1.ps1: GET-PROCESS'
            in lines)
    assert lines[-2:] == ['Outputs in %s:' % tmp_path, '    %s' % (tmp_path / 'alerts-00000-of-00001.avro')]
