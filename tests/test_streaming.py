"""Streaming: windows evaluated as the watermark passes, late rows within the allowed lateness,
rows later than that, and the same alerts as the batch transforms over the same rows, in both semantics.

The streams are Beam's TestStream with explicit watermark steps; each stream ends by moving the
watermark past every window's end and allowed lateness before infinity, so that no timer is left
to fire once the assertions' window has closed.
"""

import collections
import gzip
import json
import os

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from beam_testing import streaming_pipeline
from scenario import SEMANTICS, WINDOWS, Tenant, semantics_scenarios
from transforms.detect.alerts import ALERTS, query_result
from transforms.detect.query import evaluate_window
from transforms.detect.rule import load_rule
from transforms.detect.semantics import NAMES, Semantics
from transforms.detect.streaming import WITHDRAWN, DetectInStream
from transforms.detect.windows import QueryWindows, parse_timespan
from transforms.read.dead_letter import DEAD_LETTER
from transforms.read.ingest import format_datetime_us, typed_row
from transforms.read.schema import TABLES

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
DAY = 86_400_000_000
HOUR = 3_600_000_000
MAY_1 = 1714521600 * 1_000_000  # 2024-05-01T00:00:00Z


def typed(tenant):
    return [(table, typed_row(table, row)) for table, rows in (
        ('AzureActivity', tenant.activity), ('DeviceFileEvents', tenant.files), ('DeviceEvents', tenant.events))
        for row in rows]


def stamped(pairs):
    return [window.TimestampedValue(pair, Timestamp(micros=pair[1]['TimeGenerated'])) for pair in pairs]


def test_on_time_late_within_lateness_and_too_late():
    on_time, late, too_late = Tenant(), Tenant(), Tenant()
    on_time.session(1, 10, 'vm1')
    on_time.script(1, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    on_time.session(1, 11, 'vm2')
    on_time.script(1, 11, 'vm2', 'script1.ps1', ['Get-Service'])
    late._ids = 1000
    # A late run of vm2's script on vm3: vm2's fingerprint is no longer unique (withdrawn),
    # and a new unique script on vm4 alerts.
    late.session(1, 12, 'vm3')
    late.script(1, 12, 'vm3', 'script2.ps1', ['Get-Service'])
    late.session(1, 13, 'vm4')
    late.script(1, 13, 'vm4', 'script3.ps1', ['Get-Date'])
    too_late._ids = 2000
    too_late.session(1, 14, 'vm5')
    too_late.script(1, 14, 'vm5', 'script4.ps1', ['Get-Random'])

    stream = (TestStream()
              .advance_watermark_to(Timestamp(micros=MAY_1))
              .add_elements(stamped(typed(on_time)))
              .advance_watermark_to(Timestamp(micros=MAY_1 + DAY + 1000))           # window closes on time
              .add_elements(stamped(typed(late)))                               # late, within 1h
              .advance_watermark_to(Timestamp(micros=MAY_1 + DAY + 2 * HOUR))   # past the lateness
              .add_elements(stamped(typed(too_late)))
              .advance_watermark_to_infinity())
    windows = QueryWindows(DAY, DAY)
    with streaming_pipeline() as p:
        out = p | stream | DetectInStream(Semantics.named('sentinel'), load_rule(), windows, HOUR)
        alerts = out[ALERTS] | 'AlertKey' >> beam.Map(
            lambda a: (a.get('AlertStatus', 'New'), a.get('QueryResult', {}).get('VirtualMachineName')))
        assert_that(alerts, equal_to([('New', 'vm1'), ('New', 'vm2'), (WITHDRAWN, None), ('New', 'vm4')]),
                    label='AlertsAsTheyChange')
        late_rows = out[DEAD_LETTER] | 'LateKey' >> beam.Map(lambda d: (d['reason'], d['table']))
        assert_that(late_rows, equal_to(
            [('late', 'AzureActivity')] * 3 + [('late', 'DeviceFileEvents'), ('late', 'DeviceEvents')]),
            label='TooLateRowsDeadLettered')


def test_alert_ids_stay_the_same_across_late_firings():
    first, late = Tenant(), Tenant()
    first.session(1, 10, 'vm1')
    first.script(1, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    late._ids = 1000
    late.session(1, 12, 'vm2')
    late.script(1, 12, 'vm2', 'script1.ps1', ['Get-Date'])
    stream = (TestStream()
              .advance_watermark_to(Timestamp(micros=MAY_1))
              .add_elements(stamped(typed(first)))
              .advance_watermark_to(Timestamp(micros=MAY_1 + DAY + 1000))
              .add_elements(stamped(typed(late)))
              .advance_watermark_to_infinity())
    # The ids of vm1's and vm2's alerts, as a batch run over all the rows gives them.
    expected_ids = ['90361db5-8002-5b67-a488-706151218b30', 'fc86f97d-f649-58ba-8b31-b68928bd68c6']
    with streaming_pipeline() as p:
        out = p | stream | DetectInStream(Semantics.named('sentinel'), load_rule(), QueryWindows(DAY, DAY), HOUR)
        # vm1's alert (Prevalence 100, then 50) is emitted once, with the id the batch gives it.
        assert_that(out[ALERTS] | beam.Map(lambda a: a['SystemAlertId']), equal_to(expected_ids))


def _golden_rows(case):
    rows = []
    for table in TABLES:
        with gzip.open(os.path.join(GOLDEN, case['inputs'][table]), 'rt', encoding='utf-8') as handle:
            rows.extend((table, typed_row(table, json.loads(line))) for line in handle if line.strip())
    return rows


with open(os.path.join(GOLDEN, 'cases.json'), encoding='utf-8') as _handle:
    CASES = [c for c in json.load(_handle)['cases'] if not c.get('start') and not c.get('end')]


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_window_evaluation_equals_reference(case):
    """The streaming evaluator, fed each window's rows, gives the reference rows of that window."""
    offset = parse_timespan(case['offset']) if case.get('offset') not in (None, '0') else 0
    windows = QueryWindows(parse_timespan(case['period']), parse_timespan(case['frequency']), offset)
    by_window = collections.defaultdict(lambda: collections.defaultdict(list))
    for table, row in _golden_rows(case):
        if row['TimeGenerated'] is None:
            continue
        for start in windows.starts_covering(row['TimeGenerated']):
            by_window[start][table].append(row)
    got = collections.Counter()
    for start, tables in by_window.items():
        for row in evaluate_window(tables, Semantics.named('sentinel')):
            result = query_result(row)
            result['QueryPeriodStart'] = format_datetime_us(start)
            result['QueryPeriodEnd'] = format_datetime_us(start + windows.period_us)
            got[json.dumps(result, sort_keys=True)] += 1
    with open(os.path.join(GOLDEN, case['expected']), encoding='utf-8') as handle:
        want = collections.Counter(json.dumps(json.loads(line), sort_keys=True) for line in handle if line.strip())
    assert got == want


def stream_day_by_day(pairs, lateness_us, days_per_step=1, margin_us=0):
    """A TestStream of (table, row) pairs: the rows of `days_per_step` days at once, then the watermark
    to the end of those days; at last past every window's end, margin and lateness."""
    by_day = collections.defaultdict(list)
    for pair in pairs:
        by_day[pair[1]['TimeGenerated'] // DAY // days_per_step * days_per_step * DAY].append(pair)
    stream = TestStream().advance_watermark_to(Timestamp(micros=min(by_day)))
    for day in sorted(by_day):
        stream = stream.add_elements(stamped(by_day[day])).advance_watermark_to(
            Timestamp(micros=day + days_per_step * DAY))
    # Past the last window's end and lateness before infinity: timers that fire only at infinity
    # would emit after the assertion's own global window has closed.
    return stream.advance_watermark_to(
        Timestamp(micros=max(by_day) + days_per_step * DAY + margin_us + lateness_us + 1000)) \
        .advance_watermark_to_infinity()


def result_with_window(alert):
    return json.dumps(dict(alert['QueryResult'], QueryPeriodStart=alert['QueryPeriodStart'],
                           QueryPeriodEnd=alert['QueryPeriodEnd']), sort_keys=True)


def test_stream_gives_the_batch_alerts_in_both_semantics(scenario_batch_alerts):
    """The semantics scenarios streamed day by day give, in each semantics, the alerts (ids and
    results) of the batch transforms over the same rows."""
    pairs = [(table, row) for table, rows in semantics_scenarios().typed().items() for row in rows]
    expected = {name: sorted((a['SystemAlertId'], result_with_window(a)) for alerts in by_day.values()
                             for a in alerts)
                for name, by_day in scenario_batch_alerts.items()}
    assert [len(expected[name]) for name in NAMES] == [11, 36]
    with streaming_pipeline() as p:
        rows = p | stream_day_by_day(pairs, HOUR, days_per_step=6, margin_us=WINDOWS['strict'].margin_us)
        for name in NAMES:
            out = rows | 'Detect' + name >> DetectInStream(SEMANTICS[name], load_rule(), WINDOWS[name], HOUR)
            assert_that(out[ALERTS] | 'Key' + name >> beam.Map(lambda a: (a['SystemAlertId'], result_with_window(a))),
                        equal_to(expected[name]), label='BatchAlerts' + name)
            assert_that(out[DEAD_LETTER], equal_to([]), label='NothingLate' + name)


def test_edge_day_streamed_gives_the_reference_rows():
    """The edge case (every quirk of the KQL) streamed in arrival order gives the reference rows of
    the KQL's evaluation, window by window."""
    case = next(c for c in CASES if c['name'] == 'edge_1d')
    pairs = [pair for pair in _golden_rows(case) if pair[1]['TimeGenerated'] is not None]
    with open(os.path.join(GOLDEN, case['expected']), encoding='utf-8') as handle:
        want = [json.dumps(json.loads(line), sort_keys=True) for line in handle if line.strip()]
    with streaming_pipeline() as p:
        out = p | stream_day_by_day(pairs, HOUR) | DetectInStream(
            Semantics.named('sentinel'), load_rule(), QueryWindows(DAY, DAY), HOUR)
        assert_that(out[ALERTS] | beam.Map(result_with_window), equal_to(want))
        assert_that(out[DEAD_LETTER], equal_to([]), label='NothingLate')


def test_strict_waits_for_the_look_ahead_before_evaluating_a_window():
    """A strict session from 23:59:30 to 00:00:30, streamed day by day without allowed lateness: its
    window is evaluated once the watermark passes midnight plus the look-ahead, with the rows after
    midnight, and alerts in the day it started; the next day's session alerts in its own day."""
    tenant = Tenant()
    tenant.session(1, 23, 'vm1', minute=59, seconds=(30, 31, 90))
    tenant.script(1, 23, 'vm1', 'script0.ps1', ['Get-Uptime'], minute=59, file_seconds=[40], cmdlet_seconds=[50, 65])
    tenant.session(2, 0, 'vm2', minute=30)
    tenant.script(2, 0, 'vm2', 'script1.ps1', ['Get-Date'], minute=30)
    strict = SEMANTICS['strict']
    with streaming_pipeline() as p:
        out = (p | stream_day_by_day(typed(tenant), 0, margin_us=strict.look_ahead_us)
               | DetectInStream(strict, load_rule(), WINDOWS['strict'], 0))
        assert_that(out[ALERTS] | beam.Map(lambda a: (a['QueryPeriodStart'][:10], a['QueryResult']['VirtualMachineName'],
                                                      a['QueryResult']['PowershellScriptCommands'])),
                    equal_to([('2024-05-01', 'vm1', ['GET-UPTIME']), ('2024-05-02', 'vm2', ['GET-DATE'])]))
        assert_that(out[DEAD_LETTER], equal_to([]), label='NothingLate')
