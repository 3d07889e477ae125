"""`DetectPerWindow` (one grouping per query window) against `DetectUniqueScripts` (one per stage):
the same results, RunCommandData rows and counters in both semantics, whatever the split of a
window's rows into bundles and the order in which their accumulators merge."""

import collections
import gzip
import json
import os
import pickle
import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow, IntervalWindow

from beam_testing import in_process_pipeline
from pipelines import rare_runcommand
from scenario import SEMANTICS, WINDOWS, semantics_scenarios
from transforms.detect.fingerprints import window_unique_fingerprints
from transforms.detect.per_window import (TABLES, DetectPerWindow, EvaluateWindowInputs, FoldWindowRows,
                                          WindowInputs, WindowInputsCoder, WindowInputsCombineFn)
from transforms.detect.query import RESULTS, RUN_COMMAND_DATA, DetectUniqueScripts, window_stages
from transforms.detect.relevance import is_relevant
from transforms.detect.semantics import NAMES, Semantics
from transforms.detect.windows import QueryWindows, parse_timespan
from transforms.read.ingest import typed_row

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
with open(os.path.join(GOLDEN, 'cases.json'), encoding='utf-8') as _handle:
    GOLDEN_CASES = [case for case in json.load(_handle)['cases'] if not case.get('start') and not case.get('end')]


def canonical(window_and_row):
    return json.dumps([list(window_and_row[0]), window_and_row[1]], sort_keys=True, default=str)


def by_window(rows_by_table, windows):
    """{window: {table: rows}} of every window that reads each row."""
    grouped = collections.defaultdict(lambda: collections.defaultdict(list))
    for table, rows in rows_by_table.items():
        for row in rows:
            for window in windows.windows_in_range(row['TimeGenerated']):
                grouped[window][table].append(row)
    return grouped


def reference(grouped, semantics):
    """{tag: canonical (window, row) texts} of the stage functions on each window's lists."""
    found = {RESULTS: [], RUN_COMMAND_DATA: []}
    for window, rows_by_table in grouped.items():
        run_command_data = window_stages(rows_by_table, semantics, window).run_command_data
        found[RUN_COMMAND_DATA] += [canonical((window, row)) for row in run_command_data]
        found[RESULTS] += [canonical((window, row)) for row in window_unique_fingerprints(run_command_data, semantics)]
    return found


def in_batches(rows, rng):
    """`rows` cut into lists of 1 to 5 rows."""
    batches, start = [], 0
    while start < len(rows):
        size = rng.randint(1, 5)
        batches.append(rows[start:start + size])
        start += size
    return batches


def run_detection(transform, grouped, expected, batches=False, tagged=False):
    """Runs `transform` over the windowed rows (with `batches`, (window, [row, ...]) lists of them;
    with `tagged`, all tables in one collection of (table, element)), asserting its outputs equal
    `expected`; returns the run's counters."""
    pipeline = in_process_pipeline()
    rng = random.Random(3)
    if batches:
        elements = {table: [(window, batch) for window, rows_by_table in grouped.items()
                            for batch in in_batches(list(rows_by_table.get(table, ())), rng)] for table in TABLES}
    else:
        elements = {table: [(window, row) for window, rows_by_table in grouped.items()
                            for row in rows_by_table.get(table, ())] for table in TABLES}
    if tagged:
        tables = pipeline | 'Rows' >> beam.Create([(table, element) for table in TABLES for element in elements[table]])
    else:
        tables = {table: pipeline | 'Rows' + table >> beam.Create(elements[table]) for table in TABLES}
    detected = tables | 'Detect' >> transform
    for tag in (RESULTS, RUN_COMMAND_DATA):
        assert_that(detected[tag] | 'Canonical' + tag >> beam.Map(canonical), equal_to(expected[tag]),
                    label='Check' + tag)
    result = pipeline.run()
    result.wait_until_finish()
    return rare_runcommand.counters(result)


def check_both_groupings(grouped, semantics):
    expected = reference(grouped, semantics)
    assert expected[RUN_COMMAND_DATA], 'a case without RunCommandData rows shows nothing'
    per_stage = run_detection(DetectUniqueScripts(semantics), grouped, expected)
    per_window = run_detection(DetectPerWindow(semantics), grouped, expected)
    batched = run_detection(DetectPerWindow(semantics, batches=True), grouped, expected, batches=True)
    relevant = {window: {table: [row for row in rows if is_relevant(table, row, semantics)]
                         for table, rows in rows_by_table.items()} for window, rows_by_table in grouped.items()}
    assert sum(map(len, (rows for tables in relevant.values() for rows in tables.values()))) < sum(
        map(len, (rows for tables in grouped.values() for rows in tables.values())))
    prefiltered = run_detection(DetectPerWindow(semantics, batches=True, relevant=True), relevant, expected,
                                batches=True)
    tagged = run_detection(DetectPerWindow(semantics, batches=True, relevant=True), relevant, expected,
                           batches=True, tagged=True)
    assert per_window == per_stage
    assert batched == per_stage
    assert prefiltered == per_stage
    assert tagged == per_stage
    assert per_window['detection']['run_command_data'] == len(expected[RUN_COMMAND_DATA])
    return per_window


@pytest.mark.parametrize('name', NAMES)
def test_both_groupings_give_the_same_rows_and_counters_on_the_scenarios(name):
    """Every documented difference of the semantics, each on its own day; strict reads a margin
    around each window and drops copied records (counted the same way by both)."""
    counters = check_both_groupings(by_window(semantics_scenarios().typed(), WINDOWS[name]), SEMANTICS[name])
    if name == 'strict':
        assert sum(values.get('duplicates_dropped', 0) for values in counters.values()) > 0


def golden_rows(case):
    rows = collections.defaultdict(list)
    for table in TABLES:
        with gzip.open(os.path.join(GOLDEN, case['inputs'][table]), 'rt', encoding='utf-8') as handle:
            for line in handle:
                row = typed_row(table, json.loads(line)) if line.strip() else None
                if row is not None and row['TimeGenerated'] is not None:
                    rows[table].append(row)
    return rows


@pytest.mark.slow
@pytest.mark.parametrize('case', GOLDEN_CASES, ids=[case['name'] for case in GOLDEN_CASES])
def test_both_groupings_give_the_same_rows_and_counters_on_the_golden_inputs(case):
    offset = parse_timespan(case['offset']) if case.get('offset') not in (None, '0') else 0
    windows = QueryWindows(parse_timespan(case['period']), parse_timespan(case['frequency']), offset)
    check_both_groupings(by_window(golden_rows(case), windows), Semantics.named('sentinel'))


def fold(semantics, tagged_rows, parts, rng):
    """`tagged_rows` ((table, row) pairs) folded as `parts` bundles of each table would fold them,
    merged in a random order."""
    shuffled = list(tagged_rows)
    rng.shuffle(shuffled)
    combines = {table: WindowInputsCombineFn(semantics, table) for table in TABLES}
    accumulators = []
    for part in range(parts):
        for table in TABLES:
            accumulator = combines[table].create_accumulator()
            for row_table, row in shuffled[part::parts]:
                if row_table == table:
                    accumulator = combines[table].add_input(accumulator, row)
            accumulators.append(accumulator)
    rng.shuffle(accumulators)
    merging = WindowInputsCombineFn(semantics)
    return WindowInputsCoder().decode(merging.extract_output(merging.merge_accumulators(accumulators)))


@pytest.mark.parametrize('name', NAMES)
def test_a_window_evaluates_the_same_however_its_rows_are_split_and_merged(name):
    semantics = SEMANTICS[name]
    grouped = by_window(semantics_scenarios().typed(), WINDOWS[name])
    evaluate = EvaluateWindowInputs(semantics)
    evaluate.setup()
    rng = random.Random(7)
    checked = 0
    for window, rows_by_table in grouped.items():
        tagged = [(table, row) for table, rows in rows_by_table.items() for row in rows]
        stages = window_stages(rows_by_table, semantics, window)
        results = window_unique_fingerprints(stages.run_command_data, semantics)
        want = sorted(canonical((window, row)) for row in results)
        want_data = sorted(canonical((window, row)) for row in stages.run_command_data)
        for parts in (1, 2, 5):
            inputs = fold(semantics, tagged, parts, rng)
            outputs = list(evaluate.evaluate(window, inputs))
            got = sorted(canonical(output) for output in outputs if not isinstance(output, beam.pvalue.TaggedOutput))
            got_data = sorted(canonical(output.value) for output in outputs
                              if isinstance(output, beam.pvalue.TaggedOutput))
            assert (got, got_data) == (want, want_data), (window, parts)
            checked += bool(want_data)
    assert checked >= 10


def test_sentinel_folds_rows_before_the_shuffle():
    """A session's three AzureActivity rows become one summary, a script's cmdlet rows one list, and
    rows no stage reads are not kept."""
    semantics = SEMANTICS['sentinel']
    rows_by_table = semantics_scenarios().typed()
    inputs = WindowInputsCombineFn(semantics).create_accumulator()
    for table, rows in rows_by_table.items():
        combine = WindowInputsCombineFn(semantics, table)
        for row in rows:
            inputs = combine.add_input(inputs, row)
    assert 0 < len(inputs.activity) <= len(rows_by_table[TABLES[0]]) / 3
    assert 0 < len(inputs.script_files) <= len(rows_by_table[TABLES[1]])
    assert 0 < len(inputs.cmdlets) < len(rows_by_table[TABLES[2]]) / 2


def test_the_accumulator_coder_compresses_what_the_shuffle_moves():
    # Session keys repeat their Authorization text's shape from row to row, as exports do.
    sessions = {('id%d' % n, '{"action":"Microsoft.Compute/virtualMachines/runCommand/action","scope":"/sub/vm%d"}' % n,
                 'bob@contoso.com'): (n, n + 5, '10.0.0.%d' % (n % 250), True) for n in range(2000)}
    inputs = WindowInputs(sessions, [], {})
    coder = WindowInputsCoder()
    encoded = coder.encode(inputs)
    assert coder.decode(encoded) == inputs
    assert len(encoded) * 4 < len(pickle.dumps(inputs, pickle.HIGHEST_PROTOCOL))


def test_the_accumulator_coder_estimates_size_without_encoding(monkeypatch):
    inputs = WindowInputs({'a': 1, 'b': 2}, [1], {})
    coder = WindowInputsCoder()
    assert coder.decode(coder.encode(inputs)) == inputs
    monkeypatch.setattr(WindowInputsCoder, 'encode', lambda self, value: pytest.fail('encoded to estimate'))
    assert coder.estimate_size(inputs) > 0


@pytest.mark.parametrize('name', NAMES)
def test_merging_no_accumulator_gives_an_empty_one(name):
    combine = WindowInputsCombineFn(SEMANTICS[name])
    assert combine.merge_accumulators([]) == combine.create_accumulator()


@pytest.mark.parametrize('name', NAMES)
def test_a_bundles_rows_leave_the_fold_as_one_accumulator_per_window(name):
    """`FoldWindowRows` yields, at the end of a bundle, one pickled `WindowInputs` per (Beam window,
    query window) of its rows: the table's `WindowInputsCombineFn` fold of them."""
    semantics = SEMANTICS[name]
    grouped = by_window(semantics_scenarios().typed(), WINDOWS[name])
    table = TABLES[2]
    pairs = [(window, row) for window, rows_by_table in grouped.items() for row in rows_by_table.get(table, ())]
    assert len({window for window, _ in pairs}) > 1
    other = IntervalWindow(0, 10)
    fold_rows = FoldWindowRows(semantics, table)
    fold_rows.start_bundle()
    for window, row in pairs:
        fold_rows.process((window, row), GlobalWindow())
        fold_rows.process((window, row), other)
    outputs = list(fold_rows.finish_bundle())
    combine = WindowInputsCombineFn(semantics, table)
    expected = {}
    for window, row in pairs:
        expected[window] = combine.add_input(expected.get(window) or combine.create_accumulator(), row)
    for beam_window in (GlobalWindow(), other):
        found = {output.value[0]: WindowInputsCoder().decode(output.value[1])
                 for output in outputs if output.windows == (beam_window,)}
        assert found == expected
    assert len(outputs) == 2 * len(expected)
