"""Run Command sessions from AzureActivity.

KQL: the Run Command operations on virtual machines, summarized per (CorrelationId, Authorization,
Caller) into StartTime/EndTime (min/max TimeGenerated), the ordinal max of CallerIpAddress and the
list of ActivityStatusValue, kept when that list has ``Succeeded`` or ``Success``; Scope and the
VM name come from the ``scope`` of the Authorization JSON.

Strict: a session is keyed by the parsed scope and action of its Authorization rather than the text
(`Semantics.session_authorization`), so rows whose JSON differs in key order or evidence stay one
session.
"""

from functools import lru_cache
from typing import NamedTuple

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.dedup import DropDuplicateRecords, distinct_records
from transforms.detect.in_memory import combine_per_key
from transforms.detect.semantics import scope_of
from transforms.read.schema import AZURE_ACTIVITY

SUCCESS_TERMS = ('Succeeded', 'Success')


def is_run_command_on_vm(row, semantics):
    """``OperationNameValue =~ <operation>`` and ``Authorization has "virtualMachines"``."""
    return semantics.is_run_command(row['OperationNameValue']) and semantics.is_on_a_machine(row['Authorization'])


def session_key(row, semantics):
    """(CorrelationId, Authorization, Caller), the Authorization as `semantics` identifies a session."""
    return row['CorrelationId'], semantics.session_authorization(row['Authorization']), row['Caller']


@lru_cache(maxsize=1024)
def status_succeeded(status):
    """Whether one status makes ``make_list(ActivityStatusValue) has_any ("Succeeded", "Success")``.

    has_any runs on the list's JSON text, where each status is a quoted, escaped JSON string;
    the quotes are term boundaries, so the list has a term iff one element's JSON text has it.
    Memoized: a table holds a few distinct statuses.
    """
    return kql.has_any_term(kql.json_text(status), SUCCESS_TERMS)


class SessionSummary(NamedTuple):
    """What the query's ``summarize`` keeps of a session's rows."""

    start: int        # StartTime: min(TimeGenerated)
    end: int          # EndTime: max(TimeGenerated)
    max_ip: str       # max(CallerIpAddress), ordinal
    succeeded: bool   # make_list(ActivityStatusValue) has_any ("Succeeded", "Success")


def summary_of_row(row):
    time = row['TimeGenerated']
    return SessionSummary(time, time, row['CallerIpAddress'], status_succeeded(row['ActivityStatusValue']))


def merge_summaries(first, second):
    """The summary of two parts of a session's rows (None: no row)."""
    if first is None:
        return second
    if second is None:
        return first
    return SessionSummary(min(first.start, second.start), max(first.end, second.end),
                          max(first.max_ip, second.max_ip), first.succeeded or second.succeeded)


class SessionCombineFn(beam.CombineFn):
    """A session's AzureActivity rows -> its `SessionSummary`."""

    def create_accumulator(self):
        return None

    def add_input(self, summary, row):
        return merge_summaries(summary, summary_of_row(row))

    def merge_accumulators(self, summaries):
        merged = None
        for summary in summaries:
            merged = merge_summaries(merged, summary)
        return merged

    def extract_output(self, summary):
        return summary


def to_session(key, summary, semantics, scopes=None):
    """The session row that the KQL projects, from its key and its summary. `scopes`: a dict that
    keeps what an Authorization text gives (its scope, subscription and VM name) for the next
    sessions with the same text, when the scope is a string (a JSON object or list is read again
    for each session: every row gets its own)."""
    correlation_id, authorization, caller = key
    from_scope = scopes.get(authorization) if scopes is not None else None
    if from_scope is None:
        scope = scope_of(authorization)
        from_scope = (scope, kql.kusto_split_at(kql.tostring_dynamic(scope), '/', 2) or '', semantics.vm_name(scope))
        if scopes is not None and (scope is None or isinstance(scope, str)):
            scopes[authorization] = from_scope
    scope, subscription, vm_name = from_scope
    return {
        'StartTime': summary.start,
        'EndTime': summary.end,
        'Subscription': subscription,
        'VirtualMachineName': vm_name,
        'CorrelationId': correlation_id,
        'Caller': caller,
        'CallerIpAddress': summary.max_ip,
        'Scope': scope,
    }


def window_sessions(activity, semantics):
    """The sessions of one window's AzureActivity rows: `RunCommandSessions` on a list."""
    run_commands = [row for row in activity if is_run_command_on_vm(row, semantics)]
    if semantics.drops_duplicate_records:
        run_commands = distinct_records(AZURE_ACTIVITY, run_commands)
    summaries = combine_per_key(((session_key(row, semantics), row) for row in run_commands), SessionCombineFn())
    return succeeded_sessions(summaries, semantics)


def succeeded_sessions(summaries, semantics):
    """The sessions of {session key: `SessionSummary`} that succeeded."""
    scopes = {}  # a third of a window's sessions repeat an Authorization text (realistic 10M)
    return [to_session(key, summary, semantics, scopes) for key, summary in summaries.items() if summary.succeeded]


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
        if semantics.drops_duplicate_records:
            run_commands = run_commands | 'DropDuplicateRecords' >> DropDuplicateRecords(AZURE_ACTIVITY)
        return (
            run_commands
            | 'KeyBySessionIdentity' >> beam.MapTuple(lambda window, row: ((window, session_key(row, semantics)), row))
            | 'SummarizeSession' >> beam.CombinePerKey(SessionCombineFn())
            | 'KeepSucceeded' >> beam.Filter(lambda keyed_summary: keyed_summary[1].succeeded)
            | 'ToSession' >> beam.MapTuple(
                lambda window_and_key, summary: (window_and_key[0], to_session(window_and_key[1], summary, semantics))))
