"""End to end: the pipeline's alerts equal, window by window, the rows of the reference evaluation
of the rule's KQL (tests/golden/README.md says how every expected file was produced).

Each test runs the whole pipeline (a few seconds each): all are marked slow. Without them, the
same reference rows are checked against the per-window evaluation (tests/test_streaming.py), which
tests/test_semantics.py checks against the batch transforms, and the bundled sample's run against
its expected alerts (tests/test_cli.py).
"""

import collections
import json
import os

import pytest

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER

pytestmark = pytest.mark.slow

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
with open(os.path.join(GOLDEN, 'cases.json'), encoding='utf-8') as _handle:
    CASES = json.load(_handle)['cases']


def canonical(record):
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def run_case(case, output_dir, extra=()):
    argv = ['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(output_dir)]
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


BAD_LINES = [
    (b'not json at all', 'not JSON'),
    (b'[{"TimeGenerated": "2024-03-01T10:00:00Z"}]', 'not a JSON object'),
    (b'{"TimeGenerated": "2024-03-01T10:00:00Z", "Caller": "\xff\xfe"}', 'invalid UTF-8'),
    (b'{"TimeGenerated": "yesterday", "OperationNameValue": "x"}', 'TimeGenerated missing or unparsable'),
    (b'{"OperationNameValue": "Microsoft.Compute/virtualMachines/runCommand/action"}',
     'TimeGenerated missing or unparsable'),
    (b'{"TimeGenerated": "2024-03-01T10:00:00Z", "Authorization": "{\\"scope', 'not JSON'),
    (b'{"TimeGenerated": "2024-03-01T10:00:00Z", "x": "' + b'a' * (1 << 20) + b'"}', 'record longer than 1 MiB'),
]


def test_bad_lines_go_to_the_dead_letter_and_change_no_alert(tmp_path):
    import gzip
    case = next(c for c in CASES if c['name'] == 'edge_1d')
    inputs = {}
    for table in rare_runcommand.TABLE_OPTIONS:
        with gzip.open(os.path.join(GOLDEN, case['inputs'][table]), 'rb') as handle:
            lines = handle.read().splitlines()
        # Bad lines at the start, in the middle and at the end of every table.
        positions = [0, len(lines) // 2, len(lines)]
        for index, (bad, _) in enumerate(BAD_LINES):
            lines.insert(positions[index % 3] + index, bad)
        path = tmp_path / (table + '.jsonl')
        path.write_bytes(b'\n'.join(lines) + b'\n')
        inputs[table] = (path, [number + 1 for number, line in enumerate(lines) if line in dict(BAD_LINES)])
    case = dict(case, inputs={table: str(path) for table, (path, _) in inputs.items()})
    got = collections.Counter(canonical(r) for r in results_with_windows(run_case(case, tmp_path / 'out')))
    want = collections.Counter(canonical(r) for r in expected_rows(next(c for c in CASES if c['name'] == 'edge_1d')))
    assert got == want
    dead = list(rare_runcommand.read_json_lines_output(str(tmp_path / 'out'), 'dead_letter'))
    for table, (path, bad_line_numbers) in inputs.items():
        mine = sorted((d['line'], d['reason']) for d in dead if d['table'] == table)
        assert [line for line, _ in mine] == bad_line_numbers
        assert sorted(reason for _, reason in mine) == sorted(reason for _, reason in BAD_LINES)
        assert all(d['source'].endswith(path.name) for d in dead if d['table'] == table)
