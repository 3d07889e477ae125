"""History baseline: a fingerprint seen in the N days before a window does not alert again."""

import json

import pytest

from scenario import Tenant, run_alerts
from transforms.detect import baseline


def weekly_script(days):
    tenant = Tenant()
    for number, day in enumerate(days):
        tenant.session(day, 10, 'vm%d' % number)
        tenant.script(day, 10, 'vm%d' % number, 'script0.ps1', ['Get-Process', 'Restart-Service'])
    return tenant


def alert_days(alerts):
    return sorted(int(a['QueryPeriodStart'][8:10]) for a in alerts)


@pytest.mark.parametrize('semantics', ['sentinel', 'strict'])
def test_each_window_sees_the_windows_before_it(tmp_path, semantics):
    inputs = weekly_script([1, 8, 20]).write(tmp_path)
    common = inputs + ['--semantics', semantics]
    assert alert_days(run_alerts(common, tmp_path / 'off')) == [1, 8, 20]
    # Day 8 is 7 days after day 1: seen within 7 days, not within 6; day 20 is new again.
    assert alert_days(run_alerts(common + ['--history_days', '7'], tmp_path / 'h7')) == [1, 20]
    assert alert_days(run_alerts(common + ['--history_days', '6'], tmp_path / 'h6')) == [1, 8, 20]


@pytest.mark.parametrize('extension', ['.jsonl', '.avro'])
def test_store_carries_history_across_runs(tmp_path, extension):
    store = tmp_path / ('store' + extension)
    (tmp_path / 'first').mkdir()
    first = weekly_script([1]).write(tmp_path / 'first')
    assert alert_days(run_alerts(first + ['--baseline_out', str(store)], tmp_path / 'out1')) == [1]
    [record] = baseline.read_store(str(store), '5239248b-abfb-4c6a-8177-b104ade5db56', 'sentinel')
    assert record['count'] == 1 and record['first_seen'].startswith('2024-05-01T10:00:00')
    assert record['example']['PowershellScriptCommands'] == ['GET-PROCESS', 'RESTART-SERVICE']

    (tmp_path / 'second').mkdir()
    second = weekly_script([5]).write(tmp_path / 'second')
    args = second + ['--history_days', '7', '--baseline_in', str(store), '--baseline_out', str(store)]
    assert run_alerts(args, tmp_path / 'out2') == []
    [record] = baseline.read_store(str(store), '5239248b-abfb-4c6a-8177-b104ade5db56', 'sentinel')
    assert record['count'] == 2 and record['last_seen'].startswith('2024-05-05T10:00:00')


def test_store_of_other_semantics_is_refused(tmp_path):
    store = tmp_path / 'store.jsonl'
    store.write_text(json.dumps({'rule_id': '5239248b-abfb-4c6a-8177-b104ade5db56', 'semantics': 'strict',
                                 'fingerprint': 'ab', 'first_seen': '2024-05-01T00:00:00.000000Z',
                                 'last_seen': '2024-05-01T00:00:00.000000Z', 'count': 1, 'example': {}}) + '\n')
    inputs = weekly_script([3]).write(tmp_path)
    with pytest.raises(baseline.BaselineError, match='strict semantics'):
        run_alerts(inputs + ['--history_days', '7', '--baseline_in', str(store)], tmp_path / 'out')


def test_store_is_replaced_only_by_a_complete_write(tmp_path):
    store = tmp_path / 'store.jsonl'
    store.write_text('old\n')
    records = [{'rule_id': 'r', 'semantics': 's', 'fingerprint': 'f', 'first_seen': 'a', 'last_seen': 'b',
                'count': 1, 'example': {}}]
    baseline.write_store(str(store), records)
    assert [json.loads(line) for line in store.read_text().splitlines()] == records
    assert sorted(p.name for p in tmp_path.iterdir()) == ['store.jsonl']   # no temporary left behind
