"""End to end: the pipeline's alerts equal, window by window, the rows of the reference evaluation
of the rule's KQL (tests/golden/README.md says how every expected file was produced)."""

import collections
import json
import os

import pytest

from pipelines import rare_runcommand

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
with open(os.path.join(GOLDEN, 'cases.json'), encoding='utf-8') as _handle:
    CASES = json.load(_handle)['cases']


def canonical(record):
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def run_case(case, output_dir, extra=()):
    argv = ['--runner=FnApiRunner', '--output_dir', str(output_dir)]
    for table, option in rare_runcommand.TABLE_OPTIONS.items():
        argv += ['--' + option, os.path.join(GOLDEN, case['inputs'][table])]
    argv += ['--query_period', case['period'], '--query_frequency', case['frequency']]
    if case.get('offset') not in (None, '0'):
        argv.append('--window_offset=' + case['offset'])
    for key in ('start', 'end'):
        if case.get(key):
            argv += ['--' + key, case[key]]
    rare_runcommand.run(argv + list(extra))
    return list(rare_runcommand.read_json_lines_output(str(output_dir), 'alerts'))


def results_with_windows(alerts):
    rows = []
    for alert in alerts:
        row = dict(alert['QueryResult'])
        row['QueryPeriodStart'] = alert['QueryPeriodStart']
        row['QueryPeriodEnd'] = alert['QueryPeriodEnd']
        rows.append(row)
    return rows


def expected_rows(case):
    with open(os.path.join(GOLDEN, case['expected']), encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_alerts_equal_reference_rows(case, tmp_path):
    got = collections.Counter(canonical(r) for r in results_with_windows(run_case(case, tmp_path)))
    want = collections.Counter(canonical(r) for r in expected_rows(case))
    assert sum(want.values()) == case['alerts']
    assert got == want, ('missing: %s\nextra: %s' % (list((want - got).elements())[:3],
                                                    list((got - want).elements())[:3]))


def test_relevant_scan_gives_the_same_alerts(tmp_path):
    case = next(c for c in CASES if c['name'] == 'realistic_small')
    full = run_case(case, tmp_path / 'full')
    relevant = run_case(case, tmp_path / 'relevant', ['--scan', 'relevant'])
    assert sorted(map(canonical, full)) == sorted(map(canonical, relevant))
    assert full


def test_alert_ids_are_deterministic_and_unique(tmp_path):
    case = CASES[0]
    first = run_case(case, tmp_path / 'a')
    second = run_case(case, tmp_path / 'b')
    ids = [a['SystemAlertId'] for a in first]
    assert sorted(ids) == sorted(a['SystemAlertId'] for a in second)
    assert len(set(ids)) == len(ids)
