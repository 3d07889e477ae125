"""Smoke test of benchmarks/run_benchmark.py on a few hundred generated rows.

Runs the benchmark's own functions (generation with its cache, the pipeline as a child process with
``--scan full`` and ``--scan relevant``, DuckDB on benchmarks/duckdb_detection.sql, the comparison
of result rows and the report) and checks that the pipeline's alerts equal the SQL's rows. No
timing is asserted. DuckDB is in the ``test`` extra.
"""

import json
import os

import pytest

from benchmarks import run_benchmark as bench


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bench-data'))
    directory, info = bench.ensure_dataset(root, 'dense', 600, seed=3, days=2, log=lambda *_: None)
    return root, directory, info


def test_generation_is_cached(dataset):
    root, directory, info = dataset
    assert info['total_rows'] > 300
    assert set(bench.table_paths(directory)) == set(bench.TABLE_FILES)
    again, info_again = bench.ensure_dataset(root, 'dense', 600, seed=3, days=2, log=lambda *_: None)
    assert again == directory and info_again == info


def test_duckdb_sql_finds_alerts(dataset):
    _, directory, _ = dataset
    rows = bench.duckdb_rows(bench.table_paths(directory))
    assert rows, 'the dense mix should raise alerts'
    assert set(bench.RESULT_COLUMNS) <= set(rows[0])
    assert all(row['QueryPeriodEnd'] > row['QueryPeriodStart'] for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize('engine', ['beam-relevant', 'beam-full', 'beam-default'])
def test_pipeline_alerts_equal_duckdb_rows(dataset, tmp_path, engine):
    _, directory, _ = dataset
    paths = bench.table_paths(directory)
    expected = bench.duckdb_rows(paths)
    result, rows = bench.run_engine(engine, paths, str(tmp_path))
    equal, description = bench.compare(expected, rows)
    assert equal, description
    assert result['wall_s'] > 0 and result['peak_rss_mb'] > 0
    counters = result['counters']
    assert counters['alerts'] == len(rows)


@pytest.mark.slow
def test_benchmark_report(dataset, tmp_path):
    root, _, info = dataset
    report = bench.benchmark('dense', 600, seed=3, days=2, repeat=1, engines=['duckdb', 'beam-relevant'],
                             data_root=root, work_dir=str(tmp_path), log=lambda *_: None, source_ref='.')
    assert report['mismatches'] == 0
    summary = report['summary']
    assert set(summary) == {'duckdb', 'beam-relevant'}
    assert summary['beam-relevant']['ratio_to_duckdb'] > 0
    assert summary['duckdb']['rows_per_s'] > 0
    report['name'] = 'smoke'
    json.dumps(report)  # JSON-ready
    assert 'smoke' in bench.format_table(report)


def test_compare_normalises_datetimes_and_prevalence():
    row = {'timestamp': '2024-03-01T06:16:29.4289583Z', 'StartTime': '2024-03-01T06:16:29.428958Z',
           'EndTime': '2024-03-01T08:16:29.428958+02:00', 'Prevalence': 100 / 3,
           'PowershellScriptCommands': ['A'], 'Scope': '/s'}
    other = dict(row, timestamp='2024-03-01T06:16:29.428958Z', EndTime='2024-03-01T06:16:29.428958Z',
                 Prevalence=33.33333333333)
    assert bench.compare([row], [other])[0]
    assert not bench.compare([row], [other, other])[0]
    assert not bench.compare([row], [dict(other, Prevalence=33.3334)])[0]


def test_sql_file_is_present():
    assert os.path.exists(bench.SQL_PATH)


GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')


@pytest.mark.parametrize('data_set, case, period_us, offset_us', [
    ('edge', 'edge_1d', bench.DAY_US, 0),
    ('realistic_small', 'realistic_small', bench.DAY_US, 0),
    ('dense_2d', 'dense_1d', bench.DAY_US, 0),
    ('dense_2d', 'offset_12h', bench.DAY_US // 2, bench.DAY_US // 4),
])
def test_duckdb_sql_matches_the_oracle_golden_results(data_set, case, period_us, offset_us):
    expected_path = os.path.join(GOLDEN, case, 'expected.jsonl')
    if not os.path.exists(expected_path):
        pytest.skip('golden case %s not present' % case)
    rows = bench.duckdb_rows(bench.table_paths(os.path.join(GOLDEN, 'data', data_set)), period_us, offset_us)
    equal, description = bench.compare(bench.read_jsonl(expected_path), rows)
    assert equal, description


def test_engine_commands_say_how_many_processes():
    paths = {table: table + '.jsonl' for table in bench.TABLE_OPTIONS}
    default, _ = bench.engine_command('beam-default', paths, 'w')
    assert not any(arg.startswith(('--scan', '--direct_')) for arg in default)
    full, _ = bench.engine_command('beam-full', paths, 'w')
    assert full[-3:] == ['--scan', 'full', '--direct_num_workers=1']
    mp2, _ = bench.engine_command('beam-relevant-mp2', paths, 'w')
    assert mp2[-2:] == ['--direct_running_mode=multi_processing', '--direct_num_workers=2']


def test_candidate_costs_report(dataset, capsys):
    from benchmarks import candidates
    from transforms.detect.relevance import read_filters
    from transforms.detect.semantics import Semantics
    _, directory, _ = dataset
    report = candidates.main([directory, '--repeat', '1'])
    assert json.loads(capsys.readouterr().out) == report
    for table, figures in report['tables'].items():
        needles, _ = read_filters(table, Semantics.named('sentinel'), 'full')
        with open(os.path.join(directory, table + '.jsonl'), 'rb') as handle:
            lines = handle.read().split(b'\n')
        assert figures['candidates'] == sum(1 for line in lines if line and needles.search(line)), table
        assert 0 < figures['relevant_rows'] <= figures['candidates'] < figures['lines'], table
        assert figures['decode_us'] > 0 and figures['read_step_cpu_s'] >= 0


@pytest.mark.parametrize('variant', ['rows', 'fused', 'preaggregated'])
def test_beam_rows_counts_every_row(capsys, variant):
    from benchmarks import beam_rows
    report = beam_rows.main(['--rows', '600', '--repeat', '1', '--variant', variant, '--rows-per-key', '3'])
    assert json.loads(capsys.readouterr().out) == report
    assert report['rows'] == 600 and len(report['run_s']) == 1 and report['run_s'][0] > 0


def test_beam_rows_fails_when_a_row_is_lost(monkeypatch):
    from benchmarks import beam_rows
    real = beam_rows.batches
    monkeypatch.setattr(beam_rows, 'batches', lambda *args: (batch[1:] for batch in real(*args)))
    with pytest.raises(Exception, match='Failed assert'):
        beam_rows.run_once(600)


def test_the_measured_copy_is_byte_compiled_outside_its_tests_and_outputs(tmp_path):
    for name in ('pipelines/a.py', 'pipelines/sub/b.py', 'tests/c.py', 'benchmarks/out/d.py', 'benchmarks/e.py'):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('X = 1\n')
    bench.compile_modules(str(tmp_path))
    compiled = sorted(str(path.relative_to(tmp_path)).split('__pycache__')[0] + path.name.split('.')[0]
                      for path in tmp_path.rglob('*.pyc'))
    assert compiled == ['benchmarks/e', 'pipelines/a', 'pipelines/sub/b']
