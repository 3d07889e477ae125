"""Run Command sessions from AzureActivity.

KQL: the Run Command operations on virtual machines, summarized per (CorrelationId, Authorization,
Caller) into StartTime/EndTime (min/max TimeGenerated), the ordinal max of CallerIpAddress and the
list of ActivityStatusValue, kept when that list has ``Succeeded`` or ``Success``; Scope and the
VM name come from the ``scope`` of the Authorization JSON.
"""

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.dedup import DropDuplicateRecords
from transforms.read.schema import AZURE_ACTIVITY

SUCCESS_TERMS = ('Succeeded', 'Success')
_STRICT_MACHINE_TYPES = ('virtualmachines', 'machines')


def is_run_command_on_vm(row, semantics):
    """``OperationNameValue =~ <operation>`` and ``Authorization has "virtualMachines"``."""
    if not any(kql.equals_ignore_case(row['OperationNameValue'], op) for op in semantics.operations):
        return False
    if semantics.strict:
        return bool(vm_name_from_scope_strict(scope_of(row['Authorization'])))
    return kql.has_term(row['Authorization'], 'virtualMachines')


def session_key(row):
    return row['CorrelationId'], row['Authorization'], row['Caller']


def status_succeeded(status):
    """Whether one status makes ``make_list(ActivityStatusValue) has_any ("Succeeded", "Success")``.

    has_any runs on the list's JSON text, where each status is a quoted, escaped JSON string;
    the quotes are term boundaries, so the list has a term iff one element's JSON text has it.
    """
    return kql.has_any_term(kql.json_text(status), SUCCESS_TERMS)


class SessionCombineFn(beam.CombineFn):
    """(StartTime, EndTime, max CallerIpAddress, succeeded) of a session's rows."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, row):
        time, ip, ok = row['TimeGenerated'], row['CallerIpAddress'], status_succeeded(row['ActivityStatusValue'])
        if accumulator is None:
            return time, time, ip, ok
        start, end, max_ip, succeeded = accumulator
        return min(start, time), max(end, time), max(max_ip, ip), succeeded or ok

    def merge_accumulators(self, accumulators):
        result = None
        for acc in accumulators:
            if acc is None:
                continue
            if result is None:
                result = acc
            else:
                result = (min(result[0], acc[0]), max(result[1], acc[1]), max(result[2], acc[2]),
                          result[3] or acc[3])
        return result

    def extract_output(self, accumulator):
        return accumulator


def scope_of(authorization):
    """``parse_json(Authorization).scope``: the dynamic value, or None."""
    parsed = kql.parse_json_text(authorization)
    if isinstance(parsed, dict):
        return parsed.get('scope')
    return None


def vm_name_from_scope_strict(scope):
    """The machine name in an ARM scope: the segment after ``virtualMachines`` or ``machines``."""
    if not isinstance(scope, str):
        return ''
    segments = scope.split('/')
    for index in range(len(segments) - 2, -1, -1):
        if segments[index].lower() in _STRICT_MACHINE_TYPES and segments[index + 1]:
            return segments[index + 1]
    return ''


def to_session(key, summary, semantics):
    """The session row that the KQL projects, from its key and its summary."""
    correlation_id, authorization, caller = key
    start, end, max_ip, _ = summary
    scope = scope_of(authorization)
    scope_text = kql.tostring_dynamic(scope)
    if semantics.strict:
        vm_name = vm_name_from_scope_strict(scope)
    else:
        vm_name = kql.kusto_split_at(scope_text, '/', -1) or ''
    return {
        'StartTime': start,
        'EndTime': end,
        'Subscription': kql.kusto_split_at(scope_text, '/', 2) or '',
        'VirtualMachineName': vm_name,
        'CorrelationId': correlation_id,
        'Caller': caller,
        'CallerIpAddress': max_ip,
        'Scope': scope,
    }


class RunCommandSessions(beam.PTransform):
    """(window, AzureActivity row) -> (window, session): one per (CorrelationId, Authorization, Caller)
    of the window, kept if it succeeded."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, activity):
        semantics = self._semantics
        run_commands = activity | 'IsRunCommandOnVm' >> beam.Filter(
            lambda window_row: is_run_command_on_vm(window_row[1], semantics))
        if semantics.strict:
            run_commands = run_commands | 'DropDuplicateRecords' >> DropDuplicateRecords(AZURE_ACTIVITY)
        return (
            run_commands
            | 'KeyBySessionIdentity' >> beam.MapTuple(lambda window, row: ((window, session_key(row)), row))
            | 'SummarizeSession' >> beam.CombinePerKey(SessionCombineFn())
            | 'KeepSucceeded' >> beam.Filter(lambda kv: kv[1][3])
            | 'ToSession' >> beam.MapTuple(
                lambda key, summary: (key[0], to_session(key[1], summary, semantics))))
