"""Streaming: the detection on an unbounded stream, window by window as the watermark passes.

Chained Beam aggregations cannot re-evaluate a window correctly on late data: with accumulating
panes every stage re-emits its earlier output and the next stage counts it twice; with discarding
panes a late firing sees only the late rows. So in streaming each query window is evaluated as a
whole, from its accumulated relevant rows, by the stage functions the batch transforms apply
(`transforms.detect.query.evaluate_window`), inside one stateful DoFn per window
(`EvaluateWindowsOnWatermark`):

* a row is added to every query window that reads its TimeGenerated (sliding windows too; strict
  semantics also read a margin before and after each window, `QueryWindows.margin_us`);
* when the watermark passes a window's end plus that margin (an event-time timer), the window is
  evaluated and its alerts are emitted;
* a row arriving after that but within ``allowed_lateness`` re-evaluates the window at once and
  emits only what changed: new alerts, and ``withdrawn`` records for alerts that no longer hold.
  An alert that is the same alert keeps its ``SystemAlertId`` (ids do not depend on Prevalence);
* once the watermark passes the window's end plus ``allowed_lateness`` the window is closed: its
  rows are dropped from state, and rows arriving for it go to the dead letter with reason ``late``.

Only rows that can matter to the rule are kept in state (the stage predicates), so a window's
state holds its Run Command rows, not the tenant's telemetry.
"""

import collections
import typing

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from transforms.detect.alerts import ALERTS, query_result, window_alerts
from transforms.detect.query import DETECTION, evaluate_window
from transforms.detect.relevance import is_relevant
from transforms.read import dead_letter as reasons
from transforms.read.dead_letter import DEAD_LETTER
from transforms.read.ingest import format_datetime_us

WITHDRAWN = 'Withdrawn'


def alerts_by_id(rows_by_table, semantics, rule, window):
    """{SystemAlertId: alert} of one window's rows ({table name: rows})."""
    results = [query_result(row) for row in evaluate_window(rows_by_table, semantics, window)]
    return {alert['SystemAlertId']: alert for alert in window_alerts(results, rule, semantics.name, window)}


class EvaluateWindowsOnWatermark(beam.DoFn):
    """Keyed by query window (start, end): holds its relevant rows, evaluates it when the watermark
    passes its end, re-evaluates on late rows within the allowed lateness, then closes it."""

    ROWS = BagStateSpec('rows', PickleCoder())
    EMITTED = ReadModifyWriteStateSpec('emitted', PickleCoder())
    CLOSED = ReadModifyWriteStateSpec('closed', PickleCoder())
    ON_TIME = TimerSpec('on_time', TimeDomain.WATERMARK)
    EXPIRY = TimerSpec('expiry', TimeDomain.WATERMARK)

    def __init__(self, semantics, rule, allowed_lateness_us, margin_us=0):
        self._semantics = semantics
        self._rule = rule
        self._lateness_us = allowed_lateness_us
        self._margin_us = margin_us

    def setup(self):
        self._late = Metrics.counter(DETECTION, 'late_rows')
        self._reevaluations = Metrics.counter(DETECTION, 'late_reevaluations')

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
            on_time.set(Timestamp(micros=window_end + self._margin_us - 1))
            expiry.set(Timestamp(micros=window_end + self._margin_us - 1 + self._lateness_us))
            return
        self._reevaluations.inc()
        yield from self._emit_changes(window_start, window_end, rows, emitted, previous)

    def _emit_changes(self, window_start, window_end, rows, emitted, previous):
        rows_by_table = collections.defaultdict(list)
        for table, row in rows.read():
            rows_by_table[table].append(row)
        current = alerts_by_id(rows_by_table, self._semantics, self._rule, (window_start, window_end))
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
            for window in windows.windows_in_range(row['TimeGenerated']):
                yield window, tagged

        return (
            tagged_rows
            | 'KeepRelevantRows' >> beam.Filter(lambda tagged: is_relevant(tagged[0], tagged[1], semantics))
            # The window (start, end) in µs keys the state: integers, so that its coder is deterministic.
            | 'KeyByQueryWindow' >> beam.FlatMap(key_by_query_window).with_output_types(
                typing.Tuple[typing.Tuple[int, int], typing.Any])
            | 'EvaluateWindowsOnWatermark' >> beam.ParDo(
                EvaluateWindowsOnWatermark(semantics, self._rule, self._lateness_us, windows.margin_us)).with_outputs(
                    DEAD_LETTER, main=ALERTS))
