"""The join of Run Command sessions with the script files the Run Command extension wrote.

KQL: DeviceFileEvents written by ``RunCommandExtension.exe`` (case-sensitive ``==``), with the VM
name taken as ``DeviceName`` up to the first ``.``, left-outer joined to the sessions on the VM name
(case-sensitive; ``""`` joins ``""``) and kept where the file's TimeGenerated lies between the
session's StartTime and EndTime, inclusive: in effect an inner join, where a file event joins every
session of its VM that holds it.

Strict: the VM is matched by its computer names ignoring case (`Semantics.session_vm_keys`), the
configured script writers count ignoring case, and each script file event belongs to at most one
session: the succeeded session on that machine whose [StartTime, EndTime] holds it, of several the
one that started last (ties: the larger CorrelationId, Caller, Scope). Every script file event is
passed on, with its session or none, because any creation of a script file ends the runs of the
previous file of that name (`transforms.detect.script_runs`).
"""

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.dedup import DropDuplicateRecords, distinct_records
from transforms.detect.in_memory import co_group_by_key
from transforms.detect.windows import key_in_window
from transforms.read.schema import DEVICE_FILE_EVENTS

SESSIONS = 'sessions'
FILES = 'files'


def is_script_file_write(row, semantics):
    return semantics.is_script_writer(row['InitiatingProcessFileName'])


def host_name(device_name):
    """``tostring(split(DeviceName, ".")[0])``."""
    return device_name.split('.', 1)[0]


def to_script_file(row):
    return {
        'VirtualMachineName': host_name(row['DeviceName']),
        'ActionType': row['ActionType'],
        'PowershellFileCreatedTimestamp': row['TimeGenerated'],
        'FileName': row['FileName'],
        'FileSize': row['FileSize'],
        'InitiatingProcessAccountName': row['InitiatingProcessAccountName'],
        'InitiatingProcessAccountDomain': row['InitiatingProcessAccountDomain'],
        'InitiatingProcessFolderPath': row['InitiatingProcessFolderPath'],
        'InitiatingProcessId': row['InitiatingProcessId'],
    }


def sessions_by_vm(session, semantics):
    """``(VM key, session)`` for each key the session's VM joins on (strict: each of its computer names)."""
    return [(vm_key, session) for vm_key in semantics.session_vm_keys(session)]


def script_file_by_vm(row, semantics):
    script_file = to_script_file(row)
    return semantics.device_vm_key(script_file['VirtualMachineName']), script_file


def joined_row(session, script_file):
    """The row the KQL projects from a session and a script file event."""
    return {
        'StartTime': session['StartTime'],
        'EndTime': session['EndTime'],
        'PowershellFileCreatedTimestamp': script_file['PowershellFileCreatedTimestamp'],
        'VirtualMachineName': session['VirtualMachineName'],
        'Caller': session['Caller'],
        'CallerIpAddress': session['CallerIpAddress'],
        'FileName': script_file['FileName'],
        'FileSize': script_file['FileSize'],
        'InitiatingProcessId': script_file['InitiatingProcessId'],
        'InitiatingProcessAccountDomain': script_file['InitiatingProcessAccountDomain'],
        'InitiatingProcessFolderPath': script_file['InitiatingProcessFolderPath'],
        'Scope': session['Scope'],
        'CorrelationId': session['CorrelationId'],
        'DeviceVirtualMachineName': script_file['VirtualMachineName'],
    }


def join_on_time(vm_key, grouped):
    """Sentinel: every (session, file) pair of one VM where the file time is between the session's bounds."""
    # `kql.between` inlined: the pairs are a VM's files times its sessions (25 sessions a file on the
    # dense benchmark set); a null bound or time never matches.
    bounds = [(session['StartTime'], session['EndTime'], session) for session in grouped[SESSIONS]
              if session['StartTime'] is not None and session['EndTime'] is not None]
    if not bounds:
        return
    for script_file in grouped[FILES]:
        created = script_file['PowershellFileCreatedTimestamp']
        if created is None:
            continue
        for start, end, session in bounds:
            if start <= created <= end:
                yield joined_row(session, script_file)


def session_order(session):
    """Which of several sessions holding a file event gets it: the one that started last; ties broken
    by CorrelationId, Caller and Scope, so that the choice never depends on input order."""
    return session['StartTime'], session['CorrelationId'], session['Caller'], kql.tostring_dynamic(session['Scope'])


def attribute_to_sessions(vm_key, grouped):
    """Strict: every script file event of one machine, attributed: the file event with its machine's key
    (``VmKey``) and the one session it belongs to (``Session``; None when no session holds it)."""
    sessions = sorted(grouped[SESSIONS], key=session_order)
    for script_file in grouped[FILES]:
        created = script_file['PowershellFileCreatedTimestamp']
        holding = [session for session in sessions if kql.between(created, session['StartTime'], session['EndTime'])]
        yield dict(script_file, VmKey=vm_key, Session=holding[-1] if holding else None)


def join_session_files(semantics):
    """The join of one VM's sessions and script file events under `semantics`."""
    return attribute_to_sessions if semantics.joins_cmdlets_to_sessions else join_on_time


def window_session_files(sessions, file_events, semantics):
    """The joined rows (strict: the attributed file events) of one window's sessions and DeviceFileEvents
    rows: `JoinSessionsWithScriptFiles` on lists."""
    script_writes = [row for row in file_events if is_script_file_write(row, semantics)]
    if semantics.drops_duplicate_records:
        script_writes = distinct_records(DEVICE_FILE_EVENTS, script_writes)
    return join_keyed_session_files(sessions, [script_file_by_vm(row, semantics) for row in script_writes], semantics)


def join_keyed_session_files(sessions, keyed_script_files, semantics):
    """The joined rows of one window's sessions and its ``(VM key, script file)`` pairs."""
    join = join_session_files(semantics)
    grouped = co_group_by_key({SESSIONS: [pair for session in sessions for pair in sessions_by_vm(session, semantics)],
                               FILES: keyed_script_files})
    return [row for vm_key, group in grouped.items() for row in join(vm_key, group)]


class JoinSessionsWithScriptFiles(beam.PTransform):
    """{'sessions': (window, session), 'files': (window, DeviceFileEvents row)} -> (window, joined row):
    one per session and script file of the same window and VM; strict: (window, attributed file), one
    per script file event."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, inputs):
        semantics = self._semantics
        join = join_session_files(semantics)
        keyed_sessions = inputs[SESSIONS] | 'KeySessionsByVm' >> beam.FlatMapTuple(
            lambda window, session: [key_in_window(window, pair) for pair in sessions_by_vm(session, semantics)])
        script_writes = inputs[FILES] | 'IsScriptFileWrite' >> beam.Filter(
            lambda window_row: is_script_file_write(window_row[1], semantics))
        if semantics.drops_duplicate_records:
            script_writes = script_writes | 'DropDuplicateRecords' >> DropDuplicateRecords(DEVICE_FILE_EVENTS)
        files_by_vm = script_writes | 'KeyFilesByVm' >> beam.MapTuple(
            lambda window, row: key_in_window(window, script_file_by_vm(row, semantics)))
        return (
            {SESSIONS: keyed_sessions, FILES: files_by_vm}
            | 'CoGroupByVm' >> beam.CoGroupByKey()
            | 'JoinOnTime' >> beam.FlatMapTuple(
                lambda window_and_vm, grouped: ((window_and_vm[0], row) for row in join(window_and_vm[1], grouped))))
