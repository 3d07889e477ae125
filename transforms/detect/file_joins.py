"""The join of Run Command sessions with the script files the Run Command extension wrote.

KQL: DeviceFileEvents written by ``RunCommandExtension.exe`` (case-sensitive ``==``), with the VM
name taken as ``DeviceName`` up to the first ``.``, left-outer joined to the sessions on the VM name
(case-sensitive; ``""`` joins ``""``) and kept where the file's TimeGenerated lies between the
session's StartTime and EndTime, inclusive: in effect an inner join. Strict semantics match the VM
name case-insensitively and accept the configured extension process names, ignoring case.
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
        'PowershellFileCreatedTimestamp': row['TimeGenerated'],
        'FileName': row['FileName'],
        'FileSize': row['FileSize'],
        'InitiatingProcessAccountName': row['InitiatingProcessAccountName'],
        'InitiatingProcessAccountDomain': row['InitiatingProcessAccountDomain'],
        'InitiatingProcessFolderPath': row['InitiatingProcessFolderPath'],
        'InitiatingProcessId': row['InitiatingProcessId'],
    }


def session_by_vm(session, semantics):
    return semantics.vm_join_key(session['VirtualMachineName']), session


def script_file_by_vm(row, semantics):
    script_file = to_script_file(row)
    return semantics.vm_join_key(script_file['VirtualMachineName']), script_file


def join_on_time(vm_key, grouped):
    """Every (session, file) pair of one VM where the file time is between the session's bounds."""
    sessions = list(grouped[SESSIONS])
    if not sessions:
        return
    for script_file in grouped[FILES]:
        created = script_file['PowershellFileCreatedTimestamp']
        for session in sessions:
            if kql.between(created, session['StartTime'], session['EndTime']):
                yield {
                    'StartTime': session['StartTime'],
                    'EndTime': session['EndTime'],
                    'PowershellFileCreatedTimestamp': created,
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


def window_session_files(sessions, file_events, semantics):
    """The joined rows of one window's sessions and DeviceFileEvents rows: `JoinSessionsWithScriptFiles`
    on lists."""
    script_writes = [row for row in file_events if is_script_file_write(row, semantics)]
    if semantics.drops_duplicate_records:
        script_writes = distinct_records(DEVICE_FILE_EVENTS, script_writes)
    grouped = co_group_by_key({SESSIONS: [session_by_vm(session, semantics) for session in sessions],
                               FILES: [script_file_by_vm(row, semantics) for row in script_writes]})
    return [row for vm_key, group in grouped.items() for row in join_on_time(vm_key, group)]


class JoinSessionsWithScriptFiles(beam.PTransform):
    """{'sessions': (window, session), 'files': (window, DeviceFileEvents row)} -> (window, joined row):
    one per session and script file of the same window and VM."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, inputs):
        semantics = self._semantics
        sessions_by_vm = inputs[SESSIONS] | 'KeySessionsByVm' >> beam.MapTuple(
            lambda window, session: key_in_window(window, session_by_vm(session, semantics)))
        script_writes = inputs[FILES] | 'IsScriptFileWrite' >> beam.Filter(
            lambda window_row: is_script_file_write(window_row[1], semantics))
        if semantics.drops_duplicate_records:
            script_writes = script_writes | 'DropDuplicateRecords' >> DropDuplicateRecords(DEVICE_FILE_EVENTS)
        files_by_vm = script_writes | 'KeyFilesByVm' >> beam.MapTuple(
            lambda window, row: key_in_window(window, script_file_by_vm(row, semantics)))
        return (
            {SESSIONS: sessions_by_vm, FILES: files_by_vm}
            | 'CoGroupByVm' >> beam.CoGroupByKey()
            | 'JoinOnTime' >> beam.FlatMapTuple(
                lambda window_and_vm, grouped: ((window_and_vm[0], row) for row in join_on_time(window_and_vm[1], grouped))))
