"""Streaming: the detection on an unbounded stream, window by window as the watermark passes.

Chained Beam aggregations cannot re-evaluate a window correctly on late data: with accumulating
panes every stage re-emits its earlier output and the next stage counts it twice; with discarding
panes a late firing sees only the late rows. So in streaming each query window is evaluated as a
whole, from its accumulated relevant rows, by the very stage functions the batch transforms apply
(`evaluate_window`), inside one stateful DoFn per window (`EvaluateWindowsOnWatermark`):

* a row is added to every query window covering its TimeGenerated (sliding windows too);
* when the watermark passes a window's end (an event-time timer), the window is evaluated and
  its alerts are emitted;
* a row arriving after that but within ``allowed_lateness`` re-evaluates the window at once and
  emits only what changed: new alerts, and ``withdrawn`` records for alerts that no longer hold.
  An alert that is the same alert keeps its ``SystemAlertId`` (ids do not depend on Prevalence);
* once the watermark passes the window's end plus ``allowed_lateness`` the window is closed: its
  rows are dropped from state, and rows arriving for it go to the dead letter with reason ``late``.

Only rows that can matter to the rule are kept in state (the stage predicates), so a window's
state holds its Run Command rows, not the tenant's telemetry.
"""

import collections

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from transforms.read import dead_letter as reasons
from transforms.detect.alerts import make_alert, query_result
from transforms.detect.dedup import record_identity
from transforms.detect.file_joins import (FILES, SESSIONS, host_name, is_script_file_write, join_on_time, to_script_file,
                                   vm_join_key)
from transforms.detect.fingerprints import FirstRowCombineFn, UniqueRowCombineFn, session_identity, with_prevalence
from transforms.read.ingest import format_datetime_us
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
from transforms.detect.script_cmdlets import CmdletListCombineFn, _to_script, script_cmdlet
from transforms.detect.script_runs import RUNS, SCRIPTS, join_on_file_name, join_on_vm_and_time
from transforms.detect.relevance import is_relevant
from transforms.detect.sessions import SessionCombineFn, is_run_command_on_vm, session_key, to_session

ALERTS = 'alerts'
DEAD_LETTER = 'dead_letter'
WITHDRAWN = 'Withdrawn'


def _combine_per_key(keyed, combine_fn):
    accumulators = {}
    for key, value in keyed:
        accumulators[key] = combine_fn.add_input(accumulators.get(key, combine_fn.create_accumulator()), value)
    return {key: combine_fn.extract_output(acc) for key, acc in accumulators.items()}


def _drop_duplicates(table, rows):
    first = _combine_per_key(((record_identity(table, r), r) for r in rows), FirstRowCombineFn())
    return list(first.values())


def evaluate_window(rows_by_table, semantics):
    """The result rows of one window from its relevant rows, with the stages' own functions."""
    activity = [r for r in rows_by_table.get(AZURE_ACTIVITY, ()) if is_run_command_on_vm(r, semantics)]
    files = [r for r in rows_by_table.get(DEVICE_FILE_EVENTS, ()) if is_script_file_write(r, semantics)]
    events = list(rows_by_table.get(DEVICE_EVENTS, ()))
    if semantics.strict:
        activity = _drop_duplicates(AZURE_ACTIVITY, activity)
        files = _drop_duplicates(DEVICE_FILE_EVENTS, files)
        events = _drop_duplicates(DEVICE_EVENTS, [r for r in events if script_cmdlet(r, semantics)])

    summaries = _combine_per_key(((session_key(r), r) for r in activity), SessionCombineFn())
    sessions = [to_session(key, summary, semantics) for key, summary in summaries.items() if summary[3]]

    by_vm = collections.defaultdict(lambda: {SESSIONS: [], FILES: []})
    for session in sessions:
        by_vm[vm_join_key(session['VirtualMachineName'], semantics)][SESSIONS].append(session)
    for row in files:
        script_file = to_script_file(row)
        by_vm[vm_join_key(script_file['VirtualMachineName'], semantics)][FILES].append(script_file)
    runs = [run for key, grouped in by_vm.items() for run in join_on_time(key, grouped)]

    by_script = collections.defaultdict(lambda: {RUNS: [], SCRIPTS: []})
    if semantics.strict:
        for row in events:
            name, cmdlet = script_cmdlet(row, semantics)
            key = (vm_join_key(host_name(row['DeviceName']), semantics), name)
            by_script[key][SCRIPTS].append((row['TimeGenerated'], cmdlet))
        for run in runs:
            by_script[(vm_join_key(run['VirtualMachineName'], semantics), run['FileName'])][RUNS].append(run)
        data = [row for key, grouped in by_script.items()
                for row in join_on_vm_and_time(key, grouped, semantics.exec_tolerance_us)]
    else:
        keyed = []
        for row in events:
            found = script_cmdlet(row, semantics)
            if found is not None:
                keyed.append(((found[0], row['InitiatingProcessCommandLine']), (row['TimeGenerated'], found[1])))
        for key, summary in _combine_per_key(keyed, CmdletListCombineFn()).items():
            name, script = _to_script(key, summary)
            by_script[name][SCRIPTS].append(script)
        for run in runs:
            by_script[run['FileName']][RUNS].append(run)
        data = [row for key, grouped in by_script.items() for row in join_on_file_name(key, grouped)]

    if semantics.strict:
        data = list(_combine_per_key(
            (((session_identity(r), r['ScriptFingerprintHash']), r) for r in data), FirstRowCombineFn()).values())
    if not data:
        return []
    counts = _combine_per_key(((r['ScriptFingerprintHash'], r) for r in data), UniqueRowCombineFn())
    return [with_prevalence(only, len(data)) for count, only in counts.values() if count == 1]


def window_alerts(rows_by_table, semantics, rule, window_start, window_end):
    """{SystemAlertId: alert} of one window."""
    results = [query_result(row) for row in evaluate_window(rows_by_table, semantics)]
    if not rule.triggers(len(results)):
        return {}
    start, end = format_datetime_us(window_start), format_datetime_us(window_end)
    if rule.event_grouping == 'SingleAlert':
        alerts = [make_alert(results, rule, semantics.name, start, end)] if results else []
    else:
        alerts = [make_alert([result], rule, semantics.name, start, end) for result in results]
    return {alert['SystemAlertId']: alert for alert in alerts}


class EvaluateWindowsOnWatermark(beam.DoFn):
    """Keyed by query window (start, end): holds its relevant rows, evaluates it when the watermark
    passes its end, re-evaluates on late rows within the allowed lateness, then closes it."""

    ROWS = BagStateSpec('rows', PickleCoder())
    EMITTED = ReadModifyWriteStateSpec('emitted', PickleCoder())
    CLOSED = ReadModifyWriteStateSpec('closed', PickleCoder())
    ON_TIME = TimerSpec('on_time', TimeDomain.WATERMARK)
    EXPIRY = TimerSpec('expiry', TimeDomain.WATERMARK)

    def __init__(self, semantics, rule, allowed_lateness_us):
        self._semantics = semantics
        self._rule = rule
        self._lateness_us = allowed_lateness_us

    def setup(self):
        self._late = Metrics.counter('detection', 'late_rows')
        self._reevaluations = Metrics.counter('detection', 'late_reevaluations')

    def process(self, element, rows=beam.DoFn.StateParam(ROWS), emitted=beam.DoFn.StateParam(EMITTED),
                closed=beam.DoFn.StateParam(CLOSED), on_time=beam.DoFn.TimerParam(ON_TIME),
                expiry=beam.DoFn.TimerParam(EXPIRY)):
        (window_start, window_end), (table, row) = element
        if closed.read():
            self._late.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(
                table, 'stream', {'TimeGenerated': format_datetime_us(row['TimeGenerated']),
                                  'QueryPeriodStart': format_datetime_us(window_start)},
                reasons.LATE, repr(row)))
            return
        rows.add((table, row))
        previous = emitted.read()
        if previous is None:
            on_time.set(Timestamp(micros=window_end - 1))
            expiry.set(Timestamp(micros=window_end - 1 + self._lateness_us))
            return
        self._reevaluations.inc()
        yield from self._emit_changes(window_start, window_end, rows, emitted, previous)

    def _emit_changes(self, window_start, window_end, rows, emitted, previous):
        rows_by_table = collections.defaultdict(list)
        for table, row in rows.read():
            rows_by_table[table].append(row)
        current = window_alerts(rows_by_table, self._semantics, self._rule, window_start, window_end)
        for alert_id, alert in sorted(current.items()):
            if alert_id not in previous:
                yield alert
        for alert_id in sorted(set(previous) - set(current)):
            yield {'SystemAlertId': alert_id, 'AlertStatus': WITHDRAWN,
                   'QueryPeriodStart': format_datetime_us(window_start),
                   'QueryPeriodEnd': format_datetime_us(window_end)}
        emitted.write(sorted(current))

    @on_timer(ON_TIME)
    def on_time(self, key=beam.DoFn.KeyParam, rows=beam.DoFn.StateParam(ROWS),
                emitted=beam.DoFn.StateParam(EMITTED), closed=beam.DoFn.StateParam(CLOSED)):
        if emitted.read() is None and not closed.read():
            window_start, window_end = key
            yield from self._emit_changes(window_start, window_end, rows, emitted, [])

    @on_timer(EXPIRY)
    def expire(self, key=beam.DoFn.KeyParam, rows=beam.DoFn.StateParam(ROWS),
               emitted=beam.DoFn.StateParam(EMITTED), closed=beam.DoFn.StateParam(CLOSED)):
        # Both timers can fire together (the watermark jumping past both): evaluate first if need be.
        if emitted.read() is None:
            window_start, window_end = key
            yield from self._emit_changes(window_start, window_end, rows, emitted, [])
        rows.clear()
        closed.write(True)


class DetectInStream(beam.PTransform):
    """Timestamped (table, row) pairs of an unbounded stream -> alerts (main) and late rows (tagged)."""

    def __init__(self, semantics, rule, windows, allowed_lateness_us):
        super().__init__()
        self._semantics = semantics
        self._rule = rule
        self._windows = windows
        self._lateness_us = allowed_lateness_us

    def expand(self, tagged_rows):
        semantics, windows = self._semantics, self._windows

        def key_by_query_window(tagged):
            _, row = tagged
            for start in windows.starts_covering(row['TimeGenerated']):
                if windows.in_range(start, start + windows.period_us):
                    yield (start, start + windows.period_us), tagged

        return (
            tagged_rows
            | 'KeepRelevantRows' >> beam.Filter(lambda tagged: is_relevant(tagged[0], tagged[1], semantics))
            | 'KeyByQueryWindow' >> beam.FlatMap(key_by_query_window)
            | 'EvaluateWindowsOnWatermark' >> beam.ParDo(
                EvaluateWindowsOnWatermark(semantics, self._rule, self._lateness_us)).with_outputs(
                    DEAD_LETTER, main=ALERTS))
