"""Alerts: stable SystemAlertIds across reruns and overlapping backfills, trigger per window, grouping."""

import dataclasses
import random
import uuid

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.detect.alerts import ALERTS_PER_WINDOW, ToAlerts, alert_id, make_alert, query_result
from transforms.read.ingest import format_datetime_us
from transforms.detect.rule import load_rule
from transforms.detect.windows import QueryWindows
from pipelines.options import IN_PROCESS_RUNNER

DAY = 86_400_000_000
RULE = load_rule()


def result_row(day, n, vm='vm-01', caller='alice@contoso.com', cmdlets=('Get-Process',), prevalence=50.0):
    start = day * DAY + 3_600_000_000 + n * 60_000_000
    return {
        'StartTime': start, 'EndTime': start + 30_000_000, 'PowershellFileName': 'script%d.ps1' % n,
        'VirtualMachineName': vm, 'Caller': caller, 'CallerIpAddress': '10.0.0.%d' % (n + 1),
        'PowershellScriptCommands': list(cmdlets), 'PowershellFileSize': 100 + n,
        'ScriptFingerprintHash': '%064x' % (day * 100 + n), 'Prevalence': prevalence,
        'Scope': '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/' + vm,
    }


def label(start_us, end_us):
    return format_datetime_us(start_us), format_datetime_us(end_us)


def run_alerts(rows, windows, rule=RULE, semantics='sentinel', expected=None, matcher=None):
    """ToAlerts on `rows`, each in every window of `windows` (QueryWindows) holding its StartTime."""
    pipeline = BeamTestPipeline(runner=IN_PROCESS_RUNNER)
    alerts = (
        pipeline
        | beam.Create(rows)
        | 'InWindows' >> beam.FlatMap(lambda r: [(w, r) for w in windows.windows_in_range(r['StartTime'])])
        | ToAlerts(rule, semantics))
    assert_that(alerts, matcher or equal_to(expected))
    result = pipeline.run()
    result.wait_until_finish()
    return result


def ids_only(expected_ids):
    def check(alerts):
        assert sorted(a['SystemAlertId'] for a in alerts) == sorted(expected_ids)
    return check


ROWS = [result_row(0, 1), result_row(0, 2, vm='vm-02'), result_row(1, 3, cmdlets=('Invoke-WebRequest',))]


def expected_per_result(rows, windows, rule=RULE, semantics='sentinel'):
    """Alerts of AlertPerResult: one per (row, window covering the row)."""
    out = []
    for row in rows:
        for start, end in windows:
            if start <= row['StartTime'] < end:
                out.append(make_alert([query_result(row)], rule, semantics, *label(start, end)))
    return out


def test_alert_shape_and_entities():
    alert = make_alert([query_result(ROWS[0])], RULE, 'sentinel', *label(0, DAY))
    assert alert['QueryResult']['CallerName'] == 'alice'
    assert alert['QueryResult']['CallerUPNSuffix'] == 'contoso.com'
    assert list(alert['QueryResult']) == [
        'timestamp', 'StartTime', 'EndTime', 'PowershellFileName', 'VirtualMachineName', 'Caller', 'CallerName',
        'CallerUPNSuffix', 'CallerIpAddress', 'PowershellScriptCommands', 'PowershellFileSize',
        'ScriptFingerprintHash', 'Prevalence', 'Scope']
    assert alert['Entities'] == [
        {'$id': '1', 'Type': 'account', 'FullName': 'alice@contoso.com', 'Name': 'alice', 'UPNSuffix': 'contoso.com'},
        {'$id': '2', 'Type': 'ip', 'Address': '10.0.0.2'},
        {'$id': '3', 'Type': 'host', 'HostName': 'vm-01', 'AzureID': ROWS[0]['Scope']}]
    assert alert['Tactics'] == ['LateralMovement', 'Execution'] and alert['Techniques'] == ['T1570', 'T1059.001']
    assert (alert['QueryPeriodStart'], alert['QueryPeriodEnd']) == ('1970-01-01T00:00:00.000000Z',
                                                                   '1970-01-02T00:00:00.000000Z')
    assert uuid.UUID(alert['SystemAlertId']).version == 5


def test_id_depends_on_rule_semantics_window_and_row_but_not_prevalence():
    base = make_alert([query_result(ROWS[0])], RULE, 'sentinel', *label(0, DAY))['SystemAlertId']
    other_rule = dataclasses.replace(RULE, id='00000000-0000-0000-0000-000000000000')
    variants = [
        make_alert([query_result(ROWS[0])], RULE, 'strict', *label(0, DAY)),
        make_alert([query_result(ROWS[0])], other_rule, 'sentinel', *label(0, DAY)),
        make_alert([query_result(ROWS[0])], RULE, 'sentinel', *label(-DAY, DAY)),
        make_alert([query_result(ROWS[1])], RULE, 'sentinel', *label(0, DAY)),
    ]
    assert len({base} | {v['SystemAlertId'] for v in variants}) == 5
    same = make_alert([query_result(dict(ROWS[0], Prevalence=12.5))], RULE, 'sentinel', *label(0, DAY))
    assert same['SystemAlertId'] == base
    # The id is not ambiguous when a field contains the old '|' separator.
    assert alert_id(RULE, 'a|b', 'c', 'd', 'e') != alert_id(RULE, 'a', 'b|c', 'd', 'e')


def test_same_input_twice_gives_same_ids():
    fixed = QueryWindows(DAY, DAY)
    expected = expected_per_result(ROWS, [(0, DAY), (DAY, 2 * DAY)])
    assert len({a['SystemAlertId'] for a in expected}) == 3
    run_alerts(ROWS, fixed, expected=expected)
    shuffled = list(ROWS)
    random.Random(7).shuffle(shuffled)
    run_alerts(list(reversed(shuffled)), fixed, expected=expected)


def test_sliding_backfill_and_fixed_run_share_ids_for_the_same_window():
    # Fixed 2-day windows [0, 2d) vs. 2-day windows sliding every day: [-1d, 1d), [0, 2d), [1d, 3d).
    fixed = expected_per_result(ROWS, [(0, 2 * DAY)])
    sliding = expected_per_result(ROWS, [(-DAY, DAY), (0, 2 * DAY), (DAY, 3 * DAY)])
    run_alerts(ROWS, QueryWindows(2 * DAY, 2 * DAY), matcher=ids_only(
        [a['SystemAlertId'] for a in fixed]))
    run_alerts(ROWS, QueryWindows(2 * DAY, DAY), matcher=ids_only(
        [a['SystemAlertId'] for a in sliding]))
    shared = {a['SystemAlertId'] for a in fixed} & {a['SystemAlertId'] for a in sliding}
    assert shared == {a['SystemAlertId'] for a in fixed} and len(shared) == 3
    assert len(sliding) == 6


def test_trigger_threshold_applies_per_window():
    rule = dataclasses.replace(RULE, trigger_operator='gt', trigger_threshold=1)
    # Day 0 has 2 results (2 > 1: alerts), day 1 has 1 (no alert).
    expected = expected_per_result(ROWS[:2], [(0, DAY)], rule)
    result = run_alerts(ROWS, QueryWindows(DAY, DAY), rule=rule, expected=expected)
    counters = {(c.key.metric.namespace, c.key.metric.name): c.committed
                for c in result.metrics().query()['counters']}
    assert counters[('detection', 'alerts')] == 2
    assert counters[(ALERTS_PER_WINDOW, '%s/%s' % label(0, DAY))] == 2
    assert (ALERTS_PER_WINDOW, '%s/%s' % label(DAY, 2 * DAY)) not in counters


def test_single_alert_per_window_carries_all_rows():
    rule = dataclasses.replace(RULE, event_grouping='SingleAlert')
    day0 = [query_result(r) for r in ROWS[:2]]
    day1 = [query_result(ROWS[2])]
    expected = [make_alert(day0, rule, 'sentinel', *label(0, DAY)),
                make_alert(day1, rule, 'sentinel', *label(DAY, 2 * DAY))]
    assert 'QueryResult' not in expected[0] and len(expected[0]['QueryResults']) == 2
    assert expected[0]['StartTime'] == day0[0]['StartTime'] and expected[0]['EndTime'] == day0[1]['EndTime']
    run_alerts(ROWS, QueryWindows(DAY, DAY), rule=rule, expected=expected)
    # With a threshold, only the window with more than one row raises its single alert.
    strict_rule = dataclasses.replace(rule, trigger_threshold=1)
    run_alerts(ROWS, QueryWindows(DAY, DAY), rule=strict_rule,
               expected=[make_alert(day0, strict_rule, 'sentinel', *label(0, DAY))])


def test_single_alert_entities_are_distinct_and_numbered():
    rows = [query_result(result_row(0, 1)), query_result(dict(result_row(0, 2), CallerIpAddress='10.0.0.2'))]
    alert = make_alert(rows, dataclasses.replace(RULE, event_grouping='SingleAlert'), 'sentinel', *label(0, DAY))
    ids = [e['$id'] for e in alert['Entities']]
    assert ids == [str(i) for i in range(1, len(ids) + 1)]
    types = [e['Type'] for e in alert['Entities']]
    # One account, one IP (shared), one host (shared VM) -- no duplicates.
    assert types == ['account', 'ip', 'host']
    reordered = make_alert(list(reversed(rows)), dataclasses.replace(RULE, event_grouping='SingleAlert'),
                           'sentinel', *label(0, DAY))
    assert reordered == alert
