"""Alerts: their shape, SystemAlertIds stable across reruns and overlapping backfills, the trigger per
window, and the event grouping.

The expected alerts and ids are written out: an id that changes is a change for every downstream
consumer that deduplicates on it. All the pipeline cases run in one pipeline (module fixture), each
branch writing its alerts to its own files.
"""

import dataclasses
import uuid

import apache_beam as beam
import pytest

from beam_testing import in_process_pipeline
from pipelines.rare_runcommand import counters, read_json_lines_output
from transforms.detect.alerts import ALERTS_PER_WINDOW, ToAlerts, alert_id, make_alert, query_result, window_alerts
from transforms.detect.rule import load_rule
from transforms.detect.windows import QueryWindows
from transforms.write.files import WriteJsonLines

DAY = 86_400_000_000
RULE = load_rule()
SCOPE = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/'
JAN_1, JAN_2 = '1970-01-01T00:00:00.000000Z', '1970-01-02T00:00:00.000000Z'


def result_row(day, n, vm='vm-01', caller='alice@contoso.com', cmdlets=('Get-Process',), prevalence=50.0):
    start = day * DAY + 3_600_000_000 + n * 60_000_000
    return {
        'StartTime': start, 'EndTime': start + 30_000_000, 'PowershellFileName': 'script%d.ps1' % n,
        'VirtualMachineName': vm, 'Caller': caller, 'CallerIpAddress': '10.0.0.%d' % (n + 1),
        'PowershellScriptCommands': list(cmdlets), 'PowershellFileSize': 100 + n,
        'ScriptFingerprintHash': '%064x' % (day * 100 + n), 'Prevalence': prevalence, 'Scope': SCOPE + vm,
        'CorrelationId': 'not projected',
    }


ROWS = [result_row(0, 1), result_row(0, 2, vm='vm-02'), result_row(1, 3, cmdlets=('Invoke-WebRequest',))]

QUERY_RESULT = {
    'timestamp': '1970-01-01T01:01:00.000000Z', 'StartTime': '1970-01-01T01:01:00.000000Z',
    'EndTime': '1970-01-01T01:01:30.000000Z', 'PowershellFileName': 'script1.ps1', 'VirtualMachineName': 'vm-01',
    'Caller': 'alice@contoso.com', 'CallerName': 'alice', 'CallerUPNSuffix': 'contoso.com',
    'CallerIpAddress': '10.0.0.2', 'PowershellScriptCommands': ['Get-Process'], 'PowershellFileSize': 101,
    'ScriptFingerprintHash': '0000000000000000000000000000000000000000000000000000000000000001',
    'Prevalence': 50.0, 'Scope': SCOPE + 'vm-01'}

ALERT = {
    'AlertName': 'Azure VM Run Command operations executing a unique PowerShell script',
    'AlertSeverity': 'Medium',
    'Description': 'A PowerShell script run on an Azure VM through Run Command whose set of cmdlets was seen '
                   'only once in the query period.',
    'AlertType': '5239248b-abfb-4c6a-8177-b104ade5db56',
    'ProviderName': 'rare-runcommand-beam',
    'SystemAlertId': '6372b891-47ae-5cf9-998f-6726df2f2524',
    'StartTime': '1970-01-01T01:01:00.000000Z',
    'EndTime': '1970-01-01T01:01:30.000000Z',
    'Tactics': ['LateralMovement', 'Execution'],
    'Techniques': ['T1570', 'T1059.001'],
    'Entities': [
        {'$id': '1', 'Type': 'account', 'FullName': 'alice@contoso.com', 'Name': 'alice', 'UPNSuffix': 'contoso.com'},
        {'$id': '2', 'Type': 'ip', 'Address': '10.0.0.2'},
        {'$id': '3', 'Type': 'host', 'HostName': 'vm-01', 'AzureID': SCOPE + 'vm-01'}],
    'Semantics': 'sentinel',
    'QueryPeriodStart': JAN_1,
    'QueryPeriodEnd': JAN_2,
    'QueryResult': QUERY_RESULT,
}


def test_query_result_projects_the_14_columns_in_order():
    result = query_result(ROWS[0])
    assert result == QUERY_RESULT
    assert list(result) == [
        'timestamp', 'StartTime', 'EndTime', 'PowershellFileName', 'VirtualMachineName', 'Caller', 'CallerName',
        'CallerUPNSuffix', 'CallerIpAddress', 'PowershellScriptCommands', 'PowershellFileSize',
        'ScriptFingerprintHash', 'Prevalence', 'Scope']


def test_alert_shape_and_entities():
    alert = make_alert([QUERY_RESULT], RULE, 'sentinel', JAN_1, JAN_2)
    assert alert == ALERT
    assert list(alert) == list(ALERT)
    assert uuid.UUID(alert['SystemAlertId']).version == 5


def test_id_depends_on_rule_semantics_window_and_row_but_not_prevalence():
    other_rule = dataclasses.replace(RULE, id='00000000-0000-0000-0000-000000000000')
    variants = [
        make_alert([QUERY_RESULT], RULE, 'strict', JAN_1, JAN_2),
        make_alert([QUERY_RESULT], other_rule, 'sentinel', JAN_1, JAN_2),
        make_alert([QUERY_RESULT], RULE, 'sentinel', '1969-12-31T00:00:00.000000Z', JAN_2),
        make_alert([dict(QUERY_RESULT, VirtualMachineName='vm-02')], RULE, 'sentinel', JAN_1, JAN_2),
    ]
    assert [v['SystemAlertId'] for v in variants] == [
        'c33d2665-9939-55d9-a740-f2f2a05be0c1', 'a81f4d73-303b-5511-a757-c51618604835',
        'c8533ca9-a33f-5f0c-8621-56d1a3032056',    # the sliding backfill's alert for this window too
        'b7b531d7-b0c1-55d4-8ada-2a07ec256841']
    same = make_alert([dict(QUERY_RESULT, Prevalence=12.5)], RULE, 'sentinel', JAN_1, JAN_2)
    assert same['SystemAlertId'] == ALERT['SystemAlertId']
    # The id is not ambiguous when a field contains a separator.
    assert alert_id(RULE, 'a|b', 'c', 'd', 'e') != alert_id(RULE, 'a', 'b|c', 'd', 'e')


def test_single_alert_entities_are_distinct_and_numbered():
    rows = [query_result(result_row(0, 1)), query_result(dict(result_row(0, 2), CallerIpAddress='10.0.0.2'))]
    single = dataclasses.replace(RULE, event_grouping='SingleAlert')
    alert = make_alert(rows, single, 'sentinel', JAN_1, JAN_2)
    # One account, one IP, one host: the two rows share all three.
    assert alert['Entities'] == ALERT['Entities']
    assert [r['PowershellFileName'] for r in alert['QueryResults']] == ['script1.ps1', 'script2.ps1']
    assert make_alert(list(reversed(rows)), single, 'sentinel', JAN_1, JAN_2) == alert


# ---------------------------------------------------------------------- ToAlerts, in one pipeline

SINGLE = dataclasses.replace(RULE, event_grouping='SingleAlert')
CASES = {
    # name: (rows in the order given, windows, rule)
    'fixed_1d': (ROWS, QueryWindows(DAY, DAY), RULE),
    'sliding_2d_1d': (ROWS, QueryWindows(2 * DAY, DAY), RULE),
    'more_than_one_result': (ROWS, QueryWindows(DAY, DAY), dataclasses.replace(RULE, trigger_threshold=1)),
    'single_alert': (ROWS, QueryWindows(DAY, DAY), SINGLE),
}


@pytest.fixture(scope='module')
def alerts_of(tmp_path_factory):
    """{case: alerts written by ToAlerts}, and the run's counters."""
    base = tmp_path_factory.mktemp('alerts')
    pipeline = in_process_pipeline()
    branches = []
    for name, (rows, windows, rule) in CASES.items():
        branches.append(
            pipeline
            | 'Rows' + name >> beam.Create(rows)
            | 'InWindows' + name >> beam.FlatMap(
                lambda row, windows=windows: [(window, row) for window in windows.windows_in_range(row['StartTime'])])
            | 'ToAlerts' + name >> ToAlerts(rule, 'sentinel')
            | 'Label' + name >> beam.Map(lambda alert, name=name: {'case': name, 'alert': alert}))
    branches | beam.Flatten() | WriteJsonLines(str(base), 'alerts')
    result = pipeline.run()
    result.wait_until_finish()
    written = {name: [] for name in CASES}
    for record in read_json_lines_output(str(base), 'alerts'):
        written[record['case']].append(record['alert'])
    return written, counters(result)


def ids(alerts):
    """(SystemAlertId, window start day, script) of each alert, sorted."""
    return sorted((a['SystemAlertId'], a['QueryPeriodStart'][:10],
                   a['QueryResult']['PowershellFileName'] if 'QueryResult' in a
                   else tuple(r['PowershellFileName'] for r in a['QueryResults'])) for a in alerts)


FIXED_1D = [('6372b891-47ae-5cf9-998f-6726df2f2524', '1970-01-01', 'script1.ps1'),
            ('80d50c04-1efd-5e06-97d3-b8d1d8be3535', '1970-01-02', 'script3.ps1'),
            ('a2c5bbf5-4c2c-5d05-b3f1-e2f847484031', '1970-01-01', 'script2.ps1')]


def test_alerts_of_daily_windows(alerts_of):
    written, _ = alerts_of
    assert ids(written['fixed_1d']) == FIXED_1D
    [first] = [a for a in written['fixed_1d'] if a['SystemAlertId'] == ALERT['SystemAlertId']]
    assert first == ALERT


def test_sliding_backfill_and_fixed_run_share_ids_for_the_same_window(alerts_of):
    # 2-day windows sliding every day: [-1d, 1d), [0, 2d), [1d, 3d). The alerts of [0, 2d) are those
    # a run with fixed 2-day windows makes for that window.
    written, _ = alerts_of
    fixed = [make_alert([query_result(row)], RULE, 'sentinel', JAN_1, '1970-01-03T00:00:00.000000Z')['SystemAlertId']
             for row in ROWS]
    assert fixed == ['b2c9f064-fa90-5571-a601-52712b890dce', '01b9a548-aabf-532b-afe8-fd21425badfa',
                     '8989b684-99df-5cee-8dd3-6b3a652afde0']
    assert ids(written['sliding_2d_1d']) == sorted([
        (fixed[1], '1970-01-01', 'script2.ps1'), (fixed[2], '1970-01-01', 'script3.ps1'),
        (fixed[0], '1970-01-01', 'script1.ps1'),
        ('c8533ca9-a33f-5f0c-8621-56d1a3032056', '1969-12-31', 'script1.ps1'),
        ('bd1bea05-7a6b-5df9-bec2-b4145ef9f8bf', '1969-12-31', 'script2.ps1'),
        ('8be18efe-c94e-57f2-a90c-9b3c5be6afe4', '1970-01-02', 'script3.ps1')])


def test_trigger_threshold_applies_per_window(alerts_of):
    # Day 0 has 2 results (2 > 1: alerts), day 1 has 1 (no alert).
    written, counted = alerts_of
    assert ids(written['more_than_one_result']) == [FIXED_1D[0], FIXED_1D[2]]
    # The counters of all the cases of the run: 3 + 6 + 2 + 2 alerts; per daily window, those of the
    # fixed 1-day cases and of the single alerts.
    assert counted['detection'] == {'alerts': 13}
    assert counted[ALERTS_PER_WINDOW]['%s/%s' % (JAN_1, JAN_2)] == 2 + 2 + 1
    assert counted[ALERTS_PER_WINDOW]['%s/1970-01-03T00:00:00.000000Z' % JAN_2] == 1 + 1


def test_single_alert_per_window_carries_all_rows(alerts_of):
    written, _ = alerts_of
    assert ids(written['single_alert']) == [
        ('7ed07d6b-2410-55ed-8d1b-ec72dfed02ff', '1970-01-01', ('script1.ps1', 'script2.ps1')),
        ('80d50c04-1efd-5e06-97d3-b8d1d8be3535', '1970-01-02', ('script3.ps1',))]
    day0 = next(a for a in written['single_alert'] if a['QueryPeriodStart'] == JAN_1)
    assert 'QueryResult' not in day0 and day0['QueryResults'][0] == QUERY_RESULT
    assert (day0['StartTime'], day0['EndTime']) == ('1970-01-01T01:01:00.000000Z', '1970-01-01T01:02:30.000000Z')


@pytest.mark.parametrize('rule, results, alerts', [
    (RULE, 2, 2), (RULE, 0, 0),
    (dataclasses.replace(RULE, trigger_threshold=1), 1, 0), (dataclasses.replace(RULE, trigger_threshold=1), 2, 2),
    (dataclasses.replace(RULE, trigger_operator='lt', trigger_threshold=2), 1, 1),
    (dataclasses.replace(RULE, trigger_operator='lt', trigger_threshold=2), 0, 0),   # no row: nothing to raise
    (SINGLE, 2, 1), (SINGLE, 0, 0), (dataclasses.replace(SINGLE, trigger_threshold=1), 1, 0),
    (dataclasses.replace(SINGLE, trigger_threshold=1), 2, 1),
])
def test_the_alerts_of_one_window_follow_the_trigger_and_the_grouping(rule, results, alerts):
    rows = [query_result(row) for row in ROWS[:results]]
    made = window_alerts(rows, rule, 'sentinel', (0, DAY))
    assert len(made) == alerts
    assert all((a['QueryPeriodStart'], a['QueryPeriodEnd']) == (JAN_1, JAN_2) for a in made)
    if rule.event_grouping == 'SingleAlert' and made:
        assert [r['PowershellFileName'] for r in made[0]['QueryResults']] == ['script1.ps1', 'script2.ps1']
