"""Each stage of the detection as a PTransform, on hand-made rows (TestPipeline + assert_that)."""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.detect.file_joins import FILES, SESSIONS, JoinSessionsWithScriptFiles
from transforms.detect.fingerprints import UniqueFingerprints, sentinel_fingerprint
from transforms.read.ingest import parse_datetime_us, typed_row
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
from transforms.detect.script_cmdlets import ScriptCmdletLists
from transforms.detect.semantics import Semantics
from transforms.detect.sessions import RunCommandSessions
from pipelines.options import IN_PROCESS_RUNNER

SENTINEL = Semantics.named('sentinel')
OP = 'Microsoft.Compute/virtualMachines/runCommand/action'
W = (1, 2)  # a query window (start, end): the stages take and give (window, value) pairs


def in_window(values, window_us):
    """``(window, value)`` for each value: one window's collection, as the stages take it."""
    return [(window_us, value) for value in values]


def pipeline():
    return TestPipeline(runner=IN_PROCESS_RUNNER)


def t(text):
    return parse_datetime_us(text)


def auth(vm, **extra):
    return json.dumps({'action': OP, 'scope': '/subscriptions/s1/resourceGroups/rg/providers/'
                                             'Microsoft.Compute/virtualMachines/' + vm, **extra})


def activity(time, status, correlation='c1', vm='vm1', caller='alice@contoso.com', ip='10.0.0.1', op=OP,
             authorization=None):
    return typed_row(AZURE_ACTIVITY, {
        'TimeGenerated': time, 'OperationNameValue': op, 'Authorization': authorization or auth(vm),
        'CorrelationId': correlation, 'Caller': caller, 'CallerIpAddress': ip, 'ActivityStatusValue': status})


def test_sessions_summarize_and_keep_succeeded():
    rows = [
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
    ]
    with pipeline() as p:
        sessions = p | beam.Create(in_window(rows, W)) | RunCommandSessions(SENTINEL)
        assert_that(sessions | beam.MapTuple(lambda w, s: (w, s['CorrelationId'], s['StartTime'], s['EndTime'],
                                                   s['CallerIpAddress'], s['VirtualMachineName'])),
                    equal_to([(W, 'c1', t('2024-03-01T10:00:00Z'), t('2024-03-01T10:00:09Z'), '9.9.9.9', 'vm1')]))


def test_session_splits_when_authorization_text_differs():
    # Same JSON with another key order: a different Authorization string, so two sessions,
    # and the half that holds the success is kept alone.
    reordered = json.dumps({'scope': json.loads(auth('vm1'))['scope'], 'action': OP})
    rows = [activity('2024-03-01T10:00:00Z', 'Start'),
            activity('2024-03-01T10:00:09Z', 'Success', authorization=reordered)]
    with pipeline() as p:
        sessions = p | beam.Create(in_window(rows, W)) | RunCommandSessions(SENTINEL)
        assert_that(sessions | beam.MapTuple(lambda _, s: (s['StartTime'], s['EndTime'])),
                    equal_to([(t('2024-03-01T10:00:09Z'), t('2024-03-01T10:00:09Z'))]))


def session(vm, start, end, correlation='c1'):
    return {'StartTime': t(start), 'EndTime': t(end), 'Subscription': 's1', 'VirtualMachineName': vm,
            'CorrelationId': correlation, 'Caller': 'alice@contoso.com', 'CallerIpAddress': '10.0.0.1',
            'Scope': '/x/' + vm}


def file_event(device, time, name='script0.ps1', process='RunCommandExtension.exe', size=100):
    return typed_row(DEVICE_FILE_EVENTS, {
        'TimeGenerated': time, 'DeviceName': device, 'InitiatingProcessFileName': process, 'FileName': name,
        'FileSize': size})


def test_file_join_is_case_sensitive_inclusive_and_time_bounded():
    sessions = [session('vm1', '2024-03-01T10:00:00Z', '2024-03-01T10:00:10Z'),
                session('', '2024-03-01T10:00:00Z', '2024-03-01T10:00:10Z', correlation='c-empty')]
    files = [
        file_event('vm1.contoso.local', '2024-03-01T10:00:00Z', 'script0.ps1'),       # at StartTime
        file_event('vm1', '2024-03-01T10:00:10Z', 'script1.ps1'),                     # at EndTime
        file_event('vm1', '2024-03-01T10:00:10.000001Z', 'script2.ps1'),              # 1 µs after
        file_event('VM1.contoso.local', '2024-03-01T10:00:05Z', 'script3.ps1'),       # other case
        file_event('vm1', '2024-03-01T10:00:05Z', 'script4.ps1', process='runcommandextension.exe'),
        file_event('', '2024-03-01T10:00:05Z', 'script5.ps1'),                        # "" joins ""
    ]
    with pipeline() as p:
        # A file of another window never joins this window's session.
        other = in_window([file_event('vm1', '2024-03-01T10:00:05Z', 'script6.ps1')], ('x', 'y'))
        joined = ({SESSIONS: p | 'S' >> beam.Create(in_window(sessions, W)),
                   FILES: p | 'F' >> beam.Create(in_window(files, W) + other)}
                  | JoinSessionsWithScriptFiles(SENTINEL))
        assert_that(joined | beam.MapTuple(lambda w, r: (w, r['CorrelationId'], r['FileName'])),
                    equal_to([(W, 'c1', 'script0.ps1'), (W, 'c1', 'script1.ps1'), (W, 'c-empty', 'script5.ps1')]))


def device_event(command_line, command, device='vm1', time='2024-03-01T10:00:03Z', action='PowerShellCommand'):
    fields = {'TimeGenerated': time, 'DeviceName': device, 'InitiatingProcessCommandLine': command_line,
              'ActionType': action}
    if command is not None:
        fields['AdditionalFields'] = {'Command': command}
    return typed_row(DEVICE_EVENTS, fields)


def test_cmdlet_lists_are_pooled_sorted_upper_cased_with_empty_kept():
    line = 'powershell -File script0.ps1'
    rows = [
        device_event(line, 'script0.ps1'),            # the script itself: dropped
        device_event(line, 'Write-Output'),
        device_event(line, 'get-process', device='vm2'),   # another VM: pooled
        device_event(line, 'Get-Process'),
        device_event(line, None, action='ProcessCreated'),  # no Command: "" kept
        device_event(line, 'straße'),
        device_event(line, 'SCRIPT0.ps1'),            # case differs from the name: kept
        device_event('powershell -file script0.ps1', 'Ignored'),
    ]
    with pipeline() as p:
        lists = p | beam.Create(in_window(rows, W)) | ScriptCmdletLists(SENTINEL)
        assert_that(lists | beam.MapTuple(lambda key, s: (key, s['InitiatingProcessCommandLine'],
                                                           s['PowershellScriptCommands'])),
                    equal_to([((W, 'script0.ps1'), line,
                               ['', 'GET-PROCESS', 'GET-PROCESS', 'SCRIPT0.PS1', 'STRAßE', 'WRITE-OUTPUT'])]))


def data_row(cmdlets, vm='vm1', correlation='c1'):
    return {'StartTime': 1, 'EndTime': 2, 'VirtualMachineName': vm, 'CorrelationId': correlation,
            'Caller': 'a@b', 'PowershellScriptCommands': cmdlets, 'ScriptFingerprintHash': sentinel_fingerprint(cmdlets)}


def test_unique_fingerprints_count_rows_per_window_with_prevalence():
    day0, day1 = (0, 86400), (86400, 2 * 86400)
    rows = (in_window([data_row(['A']), data_row(['A'], vm='vm2'), data_row(['B']), data_row(['C'])], day0)
            + in_window([data_row(['A'])], day1))
    with pipeline() as p:
        unique = p | beam.Create(rows) | UniqueFingerprints(SENTINEL)
        assert_that(unique | beam.MapTuple(lambda w, r: (w, r['PowershellScriptCommands'], r['Prevalence'])),
                    equal_to([(day0, ['B'], 25.0), (day0, ['C'], 25.0), (day1, ['A'], 100.0)]))


def test_fingerprint_is_sha256_of_compact_json_list():
    assert sentinel_fingerprint(['GET-PROCESS', 'WRITE-OUTPUT']) == __import__('hashlib').sha256(
        b'["GET-PROCESS","WRITE-OUTPUT"]').hexdigest()


def test_script_writers_are_configurable_and_case_insensitive_only_in_strict():
    from transforms.detect.file_joins import is_script_file_write
    strict = Semantics.named('strict')
    handler = file_event('vm1', '2024-03-01T10:00:05Z', process='RunCommandHandlerWindows.exe')
    lower = file_event('vm1', '2024-03-01T10:00:05Z', process='runcommandextension.exe')
    assert is_script_file_write(handler, strict) and is_script_file_write(lower, strict)
    assert not is_script_file_write(handler, SENTINEL) and not is_script_file_write(lower, SENTINEL)
    only_custom = Semantics.named('strict', process_names=('MyRunner.exe',))
    assert not is_script_file_write(lower, only_custom)
    assert is_script_file_write(file_event('vm1', '2024-03-01T10:00:05Z', process='MYRUNNER.EXE'), only_custom)
