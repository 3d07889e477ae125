"""Each stage of the detection on hand-made rows of one window: what it must produce, written out.

These call the stages' in-memory functions, which streaming runs; the batch PTransforms that wrap
the same functions run in tests/test_semantics.py, where every scenario has its own window and the
batch results must equal the in-memory ones, day by day, in both semantics.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.detect import kql
from transforms.detect.file_joins import FILES, SESSIONS, is_script_file_write, join_on_time, window_session_files
from transforms.detect.dedup import distinct_records
from transforms.detect.fingerprints import sentinel_fingerprint, window_unique_fingerprints
from transforms.detect.script_cmdlets import script_of_command_line, window_script_cmdlet_lists
from transforms.detect.semantics import RUN_COMMAND_ACTION, Semantics
from transforms.detect.sessions import window_sessions
from transforms.read.ingest import parse_datetime_us, typed_row
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS

SENTINEL = Semantics.named('sentinel')
STRICT = Semantics.named('strict')


def t(text):
    return parse_datetime_us(text)


def auth(vm):
    return json.dumps({'action': RUN_COMMAND_ACTION,
                       'scope': '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/' + vm})


def activity(time, status, correlation='c1', vm='vm1', caller='alice@contoso.com', ip='10.0.0.1',
             op=RUN_COMMAND_ACTION, authorization=None):
    return typed_row(AZURE_ACTIVITY, {
        'TimeGenerated': time, 'OperationNameValue': op, 'Authorization': authorization or auth(vm),
        'CorrelationId': correlation, 'Caller': caller, 'CallerIpAddress': ip, 'ActivityStatusValue': status})


SESSION_ROWS = [
    activity('2024-03-01T10:00:00Z', 'Start', ip='10.1.1.1'),
    activity('2024-03-01T10:00:05Z', 'Accept', ip='9.9.9.9'),
    activity('2024-03-01T10:00:09Z', 'Success', ip='10.1.1.1'),
    # failed session
    activity('2024-03-01T11:00:00Z', 'Start', correlation='c2'),
    activity('2024-03-01T11:00:05Z', 'Failure', correlation='c2'),
    # PartiallySucceeded is not the term Succeeded
    activity('2024-03-01T12:00:00Z', 'PartiallySucceeded', correlation='c3'),
    # other operation, and an Authorization without the term virtualMachines
    activity('2024-03-01T13:00:00Z', 'Success', correlation='c4', op='Microsoft.Compute/virtualMachines/write'),
    activity('2024-03-01T14:00:00Z', 'Success', correlation='c5',
             authorization=json.dumps({'scope': '/subscriptions/s1/providers/X/virtualMachinesX/vm9'})),
    # Same JSON with another key order: another Authorization string, so another session, kept alone
    # for the half that holds the success.
    activity('2024-03-01T15:00:00Z', 'Start', correlation='c6'),
    activity('2024-03-01T15:00:09Z', 'Success', correlation='c6',
             authorization=json.dumps({'scope': json.loads(auth('vm1'))['scope'], 'action': RUN_COMMAND_ACTION})),
]
SESSIONS_OF_ROWS = [
    {'StartTime': t('2024-03-01T10:00:00Z'), 'EndTime': t('2024-03-01T10:00:09Z'), 'Subscription': 's1',
     'VirtualMachineName': 'vm1', 'CorrelationId': 'c1', 'Caller': 'alice@contoso.com', 'CallerIpAddress': '9.9.9.9',
     'Scope': '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1'},
    {'StartTime': t('2024-03-01T15:00:09Z'), 'EndTime': t('2024-03-01T15:00:09Z'), 'Subscription': 's1',
     'VirtualMachineName': 'vm1', 'CorrelationId': 'c6', 'Caller': 'alice@contoso.com', 'CallerIpAddress': '10.0.0.1',
     'Scope': '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1'},
]


def session(vm, start, end, correlation='c1'):
    return {'StartTime': t(start), 'EndTime': t(end), 'Subscription': 's1', 'VirtualMachineName': vm,
            'CorrelationId': correlation, 'Caller': 'alice@contoso.com', 'CallerIpAddress': '10.0.0.1',
            'Scope': json.loads(auth(vm))['scope']}


def file_event(device, time, name='script0.ps1', process='RunCommandExtension.exe', size=100):
    return typed_row(DEVICE_FILE_EVENTS, {
        'TimeGenerated': time, 'DeviceName': device, 'InitiatingProcessFileName': process, 'FileName': name,
        'FileSize': size})


JOIN_SESSIONS = [session('vm1', '2024-03-01T10:00:00Z', '2024-03-01T10:00:10Z'),
                 session('', '2024-03-01T10:00:00Z', '2024-03-01T10:00:10Z', correlation='c-empty')]
JOIN_FILES = [
    file_event('vm1.contoso.local', '2024-03-01T10:00:00Z', 'script0.ps1'),       # at StartTime
    file_event('vm1', '2024-03-01T10:00:10Z', 'script1.ps1'),                     # at EndTime
    file_event('vm1', '2024-03-01T10:00:10.000001Z', 'script2.ps1'),              # 1 µs after
    file_event('VM1.contoso.local', '2024-03-01T10:00:05Z', 'script3.ps1'),       # other case
    file_event('vm1', '2024-03-01T10:00:05Z', 'script4.ps1', process='runcommandextension.exe'),
    file_event('', '2024-03-01T10:00:05Z', 'script5.ps1'),                        # "" joins ""
]
# (CorrelationId, FileName) of the joined rows, by semantics: strict ignores the case of the VM name
# and of the process name, passes on every script file event with the session it belongs to ('' for
# none), and finds no machine in a scope that ends with "/" and nothing else.
JOINED = {'sentinel': [('c-empty', 'script5.ps1'), ('c1', 'script0.ps1'), ('c1', 'script1.ps1')],
          'strict': [('', 'script2.ps1'), ('', 'script5.ps1'), ('c1', 'script0.ps1'), ('c1', 'script1.ps1'),
                     ('c1', 'script3.ps1'), ('c1', 'script4.ps1')]}


def device_event(command_line, command, device='vm1', time='2024-03-01T10:00:03Z', action='PowerShellCommand'):
    fields = {'TimeGenerated': time, 'DeviceName': device, 'InitiatingProcessCommandLine': command_line,
              'ActionType': action}
    if command is not None:
        fields['AdditionalFields'] = {'Command': command}
    return typed_row(DEVICE_EVENTS, fields)


LINE = 'powershell -File script0.ps1'
CMDLET_ROWS = [
    device_event(LINE, 'script0.ps1'),                                 # the script itself: dropped
    device_event(LINE, 'Write-Output', time='2024-03-01T10:00:04Z'),
    device_event(LINE, 'get-process', device='vm2'),                    # another VM: pooled
    device_event(LINE, 'Get-Process', time='2024-03-01T10:00:02Z'),
    device_event(LINE, None, action='ProcessCreated'),                  # no Command: "" kept
    device_event(LINE, 'straße'),
    device_event(LINE, 'SCRIPT0.ps1'),                                  # case differs from the name: kept
    device_event('powershell -file script0.ps1', 'Ignored'),
]
CMDLETS = ['', 'GET-PROCESS', 'GET-PROCESS', 'SCRIPT0.PS1', 'STRAßE', 'WRITE-OUTPUT']
SCRIPTS = [('script0.ps1', {
    'PowershellFileName': 'script0.ps1', 'InitiatingProcessCommandLine': LINE,
    'PowershellExecStartTime': t('2024-03-01T10:00:02Z'), 'PowershellExecEnd': t('2024-03-01T10:00:04Z'),
    'PowershellScriptCommands': CMDLETS, 'ScriptFingerprintHash': sentinel_fingerprint(CMDLETS)})]


def data_row(cmdlets, vm='vm1', correlation='c1'):
    return {'StartTime': 1, 'EndTime': 2, 'VirtualMachineName': vm, 'CorrelationId': correlation,
            'Caller': 'a@b', 'PowershellScriptCommands': cmdlets, 'ScriptFingerprintHash': sentinel_fingerprint(cmdlets)}


DATA_ROWS = [data_row(['A']), data_row(['A'], vm='vm2'), data_row(['B']), data_row(['C'])]
UNIQUE = [(['B'], 25.0), (['C'], 25.0)]


def test_sessions_summarize_and_keep_succeeded():
    assert window_sessions(SESSION_ROWS, SENTINEL) == SESSIONS_OF_ROWS


@pytest.mark.parametrize('semantics', [SENTINEL, STRICT], ids=['sentinel', 'strict'])
def test_file_join_is_inclusive_and_time_bounded(semantics):
    joined = window_session_files(JOIN_SESSIONS, JOIN_FILES, semantics)
    sessions = [r['Session'] or {'CorrelationId': ''} if 'Session' in r else r for r in joined]
    assert sorted((s['CorrelationId'], r['FileName']) for s, r in zip(sessions, joined)) == JOINED[semantics.name]


def test_strict_drops_copies_but_keeps_records_sharing_an_identity_with_other_content():
    # The Success event (EventDataId ev-2) delivered three times: once more as it is (a copy) and once
    # with another CallerIpAddress (not a copy). Strict keeps the two contents, so its max IP is the
    # other one's; sentinel counts all three rows.
    rows = [dict(row, EventDataId='ev-%d' % n, CallerIpAddress='10.0.0.%d' % n)
            for n, row in enumerate(SESSION_ROWS[:3])]
    rows += [dict(rows[2]), dict(rows[2], CallerIpAddress='10.0.0.3')]
    assert [s['CallerIpAddress'] for s in window_sessions(rows, SENTINEL)] == ['10.0.0.3']
    assert [s['CallerIpAddress'] for s in window_sessions(rows, STRICT)] == ['10.0.0.3']
    assert sorted(r['CallerIpAddress'] for r in distinct_records(AZURE_ACTIVITY, rows)) == [
        '10.0.0.0', '10.0.0.1', '10.0.0.2', '10.0.0.3']


def test_cmdlet_lists_are_pooled_sorted_upper_cased_with_empty_kept():
    assert window_script_cmdlet_lists(CMDLET_ROWS, SENTINEL) == SCRIPTS


def test_unique_fingerprints_count_rows_with_prevalence():
    unique = window_unique_fingerprints(DATA_ROWS, SENTINEL)
    assert sorted((r['PowershellScriptCommands'], r['Prevalence']) for r in unique) == UNIQUE


def test_fingerprint_is_sha256_of_compact_json_list():
    # sha256(b'["GET-PROCESS","WRITE-OUTPUT"]'), the README's example
    assert sentinel_fingerprint(['GET-PROCESS', 'WRITE-OUTPUT']) == '05c3ab7a05dc1a8dab7dce6d8d655de3a9ebf54a313d9c839720d3f7ea31c369'


def test_script_writers_are_configurable_and_case_insensitive_only_in_strict():
    handler = file_event('vm1', '2024-03-01T10:00:05Z', process='RunCommandHandlerWindows.exe')
    lower = file_event('vm1', '2024-03-01T10:00:05Z', process='runcommandextension.exe')
    assert is_script_file_write(handler, STRICT) and is_script_file_write(lower, STRICT)
    assert not is_script_file_write(handler, SENTINEL) and not is_script_file_write(lower, SENTINEL)
    only_custom = Semantics.named('strict', process_names=('MyRunner.exe',))
    assert not is_script_file_write(lower, only_custom)
    assert is_script_file_write(file_event('vm1', '2024-03-01T10:00:05Z', process='MYRUNNER.EXE'), only_custom)


def test_batch_drops_copies_and_counts_conflicting_records():
    import apache_beam as beam   # pylint: disable=import-outside-toplevel
    from apache_beam.metrics.metric import MetricsFilter   # pylint: disable=import-outside-toplevel
    from apache_beam.testing.util import assert_that, equal_to   # pylint: disable=import-outside-toplevel
    from beam_testing import in_process_pipeline   # pylint: disable=import-outside-toplevel
    from transforms.detect.dedup import DropDuplicateRecords   # pylint: disable=import-outside-toplevel

    # e1 three times (one copy, one conflicting content), e2 once.
    rows = [dict(SESSION_ROWS[0], EventDataId='e1'), dict(SESSION_ROWS[0], EventDataId='e1'),
            dict(SESSION_ROWS[0], EventDataId='e1', CallerIpAddress='9.9.9.9'), dict(SESSION_ROWS[1], EventDataId='e2')]
    pipeline = in_process_pipeline()
    kept = pipeline | beam.Create([('w', row) for row in rows]) | DropDuplicateRecords(AZURE_ACTIVITY)
    assert_that(kept | beam.MapTuple(lambda window, row: (window, row['EventDataId'], row['CallerIpAddress'])),
                equal_to([('w', 'e1', '10.1.1.1'), ('w', 'e1', '9.9.9.9'), ('w', 'e2', '9.9.9.9')]))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(
        MetricsFilter().with_namespace(AZURE_ACTIVITY))['counters']}
    assert counters == {'duplicates_dropped': 1, 'conflicting_records': 2}


@pytest.mark.parametrize('command_line', [
    'powershell -ExecutionPolicy Unrestricted -File script0.ps1', 'powershell -file script1.ps1',
    'powershell -File  script1.ps1', 'a-File script7.ps1', 'x-Filescript1.ps1', 'powershell -File\tscript12.ps1', ''])
def test_the_script_of_a_command_line_is_the_extract_after_has(command_line):
    expected = kql.extract_script_name(command_line) if kql.has_term(command_line, '-File') else ''
    assert script_of_command_line(command_line) == expected
    assert script_of_command_line(command_line) == expected  # memoized: the same answer again


_TIMES = st.one_of(st.none(), st.integers(0, 20))


@given(st.lists(st.tuples(_TIMES, _TIMES), max_size=6), st.lists(_TIMES, max_size=6))
@settings(max_examples=300, deadline=None)
def test_the_time_join_pairs_each_file_with_every_session_holding_it(bounds, times):
    """`join_on_time` gives, file by file and in session order, the pairs `kql.between` accepts (null
    bounds or times never match)."""
    sessions = [{'StartTime': start, 'EndTime': end, 'VirtualMachineName': 'vm', 'Caller': 'c%d' % index,
                 'CallerIpAddress': '', 'Scope': '', 'CorrelationId': str(index)}
                for index, (start, end) in enumerate(bounds)]
    files = [{'PowershellFileCreatedTimestamp': time, 'FileName': 'script%d.ps1' % index, 'FileSize': 1,
              'InitiatingProcessId': 1, 'InitiatingProcessAccountDomain': '', 'InitiatingProcessFolderPath': '',
              'VirtualMachineName': 'vm'} for index, time in enumerate(times)]
    expected = [(script_file['FileName'], session['CorrelationId']) for script_file in files for session in sessions
                if kql.between(script_file['PowershellFileCreatedTimestamp'], session['StartTime'], session['EndTime'])]
    joined = join_on_time('vm', {SESSIONS: sessions, FILES: files})
    assert [(row['FileName'], row['CorrelationId']) for row in joined] == expected
