"""ReadTable: what a pattern reads when it matches files, none, or cannot be listed; the rows of
a read step paired with their query windows, and its counters."""

import csv
import json
import os

import apache_beam as beam
import pytest
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.util import assert_that, equal_to

from beam_testing import in_process_pipeline
from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from pipelines.rare_runcommand import counters
from transforms.detect.windows import QueryWindows, window_label
from transforms.read.dead_letter import DEAD_LETTER
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
from transforms.read.sources import (DEAD_LETTERS_BY_FILE, INPUT_FILES, TABLE_ROWS, ReadTable, ReadTables,
                                     UnreadableInput, counts_output, file_counter_name, rows_output)
from transforms.write.run_report import build_summary

DAY = 86_400_000_000
SAMPLES = os.path.join(os.path.dirname(__file__), 'data', 'samples')
SAMPLE_OTHERS = ['--device_file_events', rare_runcommand.SAMPLE_DIR + '/DeviceFileEvents.jsonl.gz',
                 '--device_events', rare_runcommand.SAMPLE_DIR + '/DeviceEvents.jsonl.gz']


def test_a_pattern_whose_files_cannot_be_listed_fails_the_run(tmp_path):
    # gs:// without Beam's Google Cloud file system, or any scheme Beam does not know: Beam cannot
    # list the pattern. Reading it as an empty table would give a run without alerts and exit 0.
    with pytest.raises(UnreadableInput, match="AzureActivity: cannot list the files of 'nosuchfs://bucket/\\*'"):
        rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(tmp_path),
                             '--azure_activity', 'nosuchfs://bucket/*'] + SAMPLE_OTHERS)
    assert list(tmp_path.iterdir()) == []


def test_the_command_reports_an_unlistable_pattern_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr('sys.argv', ['rare-runcommand', '--output_dir', str(tmp_path),
                                     '--azure_activity', rare_runcommand.SAMPLE_DIR + '/AzureActivity.jsonl.gz',
                                     '--device_file_events', rare_runcommand.SAMPLE_DIR + '/DeviceFileEvents.jsonl.gz',
                                     '--device_events', 'nosuchfs://bucket/DeviceEvents/*'])
    with pytest.raises(SystemExit) as exit_info:
        rare_runcommand.main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("rare-runcommand: error: DeviceEvents: cannot list the files of "
                            "'nosuchfs://bucket/DeviceEvents/*': Unable to get filesystem")
    assert error.count('\n') == 1


def test_a_listing_error_of_the_file_system_fails_the_run(monkeypatch):
    def refuse(patterns, limits=None):
        raise BeamIOError('Match operation failed', {patterns[0]: PermissionError('403 Forbidden')})

    monkeypatch.setattr(FileSystems, 'match', staticmethod(refuse))
    pipeline = beam.Pipeline(options=None)
    with pytest.raises(UnreadableInput, match='403 Forbidden'):
        _ = pipeline | ReadTable(AZURE_ACTIVITY, 'gs://no-such-bucket/*')


def test_read_step_pairs_each_row_with_its_windows_in_range(tmp_path):
    # Sliding 2-day windows every day, only those inside [-1d, 3d): each row in every such window that
    # holds it; the row at 3d + 5 us is only in [2d, 4d) and [3d, 5d), outside the range: not produced.
    path = tmp_path / 'DeviceEvents.jsonl'
    times = ['1970-01-02T00:00:00.000005Z', '1970-01-01T00:00:00.000005Z', '1970-01-03T00:00:00.000005Z',
             '1970-01-04T00:00:00.000005Z']
    path.write_text(''.join(json.dumps({'TimeGenerated': t, 'DeviceName': 'vm1'}) + '\n' for t in times))
    sliding = QueryWindows(2 * DAY, DAY, 0, -DAY, 3 * DAY)
    p = in_process_pipeline()
    read = p | ReadTable(DEVICE_EVENTS, str(path), windows=sliding)
    # A pattern that matches no file reads as an empty table.
    nothing = p | 'NoFile' >> ReadTable(AZURE_ACTIVITY, str(tmp_path / 'none' / '*.jsonl'), windows=sliding)
    assert_that((nothing.rows, nothing.dead_letter, nothing.window_counts) | beam.Flatten(), equal_to([]),
                label='NothingRead')
    assert_that(read.rows | beam.MapTuple(lambda w, row: (window_label(w), row['TimeGenerated'])), equal_to([
        (('1970-01-01T00:00:00.000000Z', '1970-01-03T00:00:00.000000Z'), DAY + 5),
        (('1970-01-02T00:00:00.000000Z', '1970-01-04T00:00:00.000000Z'), DAY + 5),
        (('1969-12-31T00:00:00.000000Z', '1970-01-02T00:00:00.000000Z'), 5),
        (('1970-01-01T00:00:00.000000Z', '1970-01-03T00:00:00.000000Z'), 5),
        (('1970-01-02T00:00:00.000000Z', '1970-01-04T00:00:00.000000Z'), 2 * DAY + 5)]),
        label='RowsInWindows')
    assert_that(read.window_counts, equal_to([((-DAY, DAY), 1), ((0, 2 * DAY), 2), ((DAY, 3 * DAY), 2)]),
                label='WindowCounts')
    result = p.run()
    result.wait_until_finish()
    # The run's counters as the pipeline hands them to the console summary and the run report.
    counted = counters(result)
    assert counted[DEVICE_EVENTS] == {'read': 4, 'parsed': 4, 'skipped_irrelevant': 0,
                                      'outside_range': 1, 'relevant': 3}
    assert AZURE_ACTIVITY not in counted
    assert build_summary(counted)['tables'][DEVICE_EVENTS] == {
        'read': 4, 'parsed': 4, 'dead_lettered': 0, 'skipped_irrelevant': 0, 'outside_range': 1}


def test_batches_hold_each_windows_rows_as_the_rows_output_pairs_them(tmp_path):
    # 600 rows over three days in sliding 2-day windows: more rows than one source element holds, each
    # row in two windows; the batches of a window together hold exactly its (window, row) pairs.
    path = tmp_path / 'DeviceEvents.jsonl'
    path.write_text(''.join(json.dumps({'TimeGenerated': '1970-01-0%dT00:00:%02d.%06dZ' % (1 + n % 3, n % 60, n),
                                        'DeviceName': 'vm%d' % n}) + '\n' for n in range(600)))
    sliding = QueryWindows(2 * DAY, DAY, 0, -DAY, 3 * DAY)
    p = in_process_pipeline()
    rows = p | 'Rows' >> ReadTable(DEVICE_EVENTS, str(path), windows=sliding)
    batched = p | 'Batches' >> ReadTable(DEVICE_EVENTS, str(path), windows=sliding, batches=True)
    pairs = rows.rows | 'PairNames' >> beam.MapTuple(lambda window, row: (window, row['DeviceName']))
    unbatched = batched.rows | beam.FlatMapTuple(lambda window, batch: [(window, row['DeviceName']) for row in batch])
    expected = [(window, 'vm%d' % n) for n in range(600)
                for window in sliding.windows_in_range(((n % 3) * 60 * 60 * 24 + n % 60) * 1_000_000 + n)]
    assert len(expected) == 1000  # the rows of the first day are in one window in range, the others in two
    assert_that(pairs, equal_to(expected), label='Pairs')
    assert_that(unbatched, equal_to(expected), label='Batches')
    sizes = batched.rows | beam.MapTuple(lambda window, batch: len(batch)) | beam.combiners.ToList()
    assert_that(sizes | beam.Map(lambda found: (sum(found), max(found) <= 256, len(found) < 20)),
                equal_to([(1000, True, True)]), label='BatchSizes')
    p.run().wait_until_finish()


def test_batches_need_windows():
    with pytest.raises(ValueError, match='batches needs windows'):
        ReadTable(DEVICE_EVENTS, 'any.jsonl', batches=True)
    with pytest.raises(ValueError, match='batches needs windows'):
        ReadTables({DEVICE_EVENTS: ('any.jsonl', None, None)}, batches=True)


def test_tagged_rows_hold_every_tables_rows_as_its_own_output_does(tmp_path):
    events, files = tmp_path / 'DeviceEvents.jsonl', tmp_path / 'DeviceFileEvents.jsonl'
    times = ['1970-01-02T00:00:00.000005Z', '1970-01-01T00:00:00.000005Z', '1970-01-02T10:00:00Z']
    events.write_text(''.join(json.dumps({'TimeGenerated': t, 'DeviceName': 'vm%d' % n}) + '\n'
                              for n, t in enumerate(times)))
    files.write_text(''.join(json.dumps({'TimeGenerated': t, 'FileName': 'f%d' % n}) + '\n'
                             for n, t in enumerate(times[:2])))
    tables = {DEVICE_EVENTS: (str(events), None, None), DEVICE_FILE_EVENTS: (str(files), None, None)}
    windows = QueryWindows(DAY, DAY)
    p = in_process_pipeline()
    apart = p | 'Apart' >> ReadTables(tables, windows=windows, batches=True)
    tagged = p | 'Tagged' >> ReadTables(tables, windows=windows, batches=True, tagged_rows=True)
    expected = [(DEVICE_EVENTS, (DAY, 2 * DAY), 'vm0'), (DEVICE_EVENTS, (0, DAY), 'vm1'),
                (DEVICE_EVENTS, (DAY, 2 * DAY), 'vm2'), (DEVICE_FILE_EVENTS, (DAY, 2 * DAY), 'f0'),
                (DEVICE_FILE_EVENTS, (0, DAY), 'f1')]

    def flat(table_and_batch):
        table, (window, batch) = table_and_batch
        return [(table, window, row.get('DeviceName') or row['FileName']) for row in batch]
    assert_that(tagged[TABLE_ROWS] | 'FlatTagged' >> beam.FlatMap(flat), equal_to(expected), label='Tagged')
    for table in tables:
        assert_that(apart[rows_output(table)] | 'FlatApart' + table >> beam.Map(lambda element, t: (t, element), table)
                    | 'Flat' + table >> beam.FlatMap(flat), equal_to([e for e in expected if e[0] == table]),
                    label='Apart' + table)
    p.run().wait_until_finish()


def test_tables_read_in_one_step_give_what_each_tables_read_gives(tmp_path):
    # Two tables with rows in and out of range and a dead letter each, and one whose pattern matches
    # nothing: each table's rows, window counts and counters as its own ReadTable gives them.
    sliding = QueryWindows(2 * DAY, DAY, 0, -DAY, 3 * DAY)
    times = ['1970-01-02T00:00:00.000005Z', '1970-01-01T00:00:00.000005Z', '1970-01-04T00:00:00.000005Z']
    events, files = tmp_path / 'DeviceEvents.jsonl', tmp_path / 'DeviceFileEvents.jsonl'
    events.write_text(''.join(json.dumps({'TimeGenerated': t, 'DeviceName': 'vm%d' % n}) + '\n'
                              for n, t in enumerate(times)) + '{"cut\n')
    files.write_text(''.join(json.dumps({'TimeGenerated': t, 'FileName': 'f%d' % n}) + '\n'
                             for n, t in enumerate(times[:2])) + '[]\n')
    patterns = {DEVICE_EVENTS: str(events), DEVICE_FILE_EVENTS: str(files), AZURE_ACTIVITY: str(tmp_path / 'no*')}
    p = in_process_pipeline()
    together = p | 'Together' >> ReadTables({table: (pattern, None, None) for table, pattern in patterns.items()},
                                            windows=sliding, batches=True)
    for table, pattern in patterns.items():
        alone = p | 'Alone' + table >> ReadTable(table, pattern, windows=sliding, batches=True)
        for name, mine, theirs in (('Rows', together[rows_output(table)], alone.rows),
                                   ('Counts', together[counts_output(table)], alone.window_counts)):
            mine = mine | name + 'Mine' + table >> beam.combiners.ToList()
            theirs = theirs | name + 'Theirs' + table >> beam.combiners.ToList()
            same = mine | name + 'Compare' + table >> beam.Map(
                lambda found, expected: (_canonical(found) == _canonical(expected), len(expected) > 0),
                beam.pvalue.AsSingleton(theirs))
            assert_that(same, equal_to([(True, table != AZURE_ACTIVITY)]), label=name + 'Same' + table)
    assert_that(together[DEAD_LETTER] | beam.Map(lambda letter: letter['table']),
                equal_to([DEVICE_EVENTS, DEVICE_FILE_EVENTS]), label='DeadLetters')
    # Two rows in range, each in two windows in range.
    assert_that(together[rows_output(DEVICE_EVENTS)] | 'PairCount' >> beam.MapTuple(lambda w, batch: len(batch))
                | beam.CombineGlobally(sum), equal_to([4]), label='EventPairs')
    result = p.run()
    result.wait_until_finish()
    counted = counters(result)
    # Each counter twice: once by the tables' step, once by the table's own.
    assert counted[DEVICE_EVENTS] == {'read': 8, 'parsed': 6, 'skipped_irrelevant': 0, 'outside_range': 2,
                                      'relevant': 4, 'dead_lettered': 2}
    assert counted[DEVICE_FILE_EVENTS]['parsed'] == 4 and counted[DEVICE_FILE_EVENTS]['dead_lettered'] == 2


def _canonical(elements):
    """A read's outputs as a sorted list of text: (window, [row, ...]) batches as single rows."""
    flat = []
    for key, value in elements:
        for item in (value if isinstance(value, list) else [value]):
            flat.append(json.dumps([key, item], sort_keys=True, default=str))
    return sorted(flat)


def test_another_tables_export_is_dead_lettered_and_counted_per_file(tmp_path):
    # The AzureActivity CSV sample given for DeviceEvents: no DeviceEvents column in any record.
    activity = os.path.join(SAMPLES, 'azure_activity.csv')
    events = tmp_path / 'DeviceEvents.jsonl'
    events.write_text(json.dumps({'TimeGenerated': '2024-03-01T00:00:00Z', 'ActionType': 'PowerShellCommand'}) + '\n'
                      + json.dumps({'TimeGenerated': '2024-03-01T00:00:01Z', 'Caller': 'x'}) + '\n')
    p = in_process_pipeline()
    wrong = p | 'Wrong' >> ReadTable(DEVICE_EVENTS, activity)
    right = p | 'Right' >> ReadTable(DEVICE_EVENTS, str(events))
    reason = 'not a DeviceEvents record: none of DeviceName, ActionType, InitiatingProcessCommandLine, AdditionalFields'
    assert_that(wrong.rows, equal_to([]), label='NoRows')
    assert_that(wrong.dead_letter | beam.Map(lambda d: (d['reason'], d['source'])) | beam.Distinct(),
                equal_to([(reason, activity)]), label='Reason')
    assert_that(right.rows | beam.Map(lambda row: row['ActionType']), equal_to(['PowerShellCommand']),
                label='KeptRow')
    result = p.run()
    result.wait_until_finish()
    counted = counters(result)
    files = counted[INPUT_FILES]
    with open(activity, encoding='utf-8-sig', newline='') as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    assert files[file_counter_name(DEVICE_EVENTS, activity, 'read')] == rows
    assert files[file_counter_name(DEVICE_EVENTS, activity, 'format:csv')] >= 1
    assert file_counter_name(DEVICE_EVENTS, activity, 'parsed') not in files
    assert counted[DEAD_LETTERS_BY_FILE] == {file_counter_name(DEVICE_EVENTS, activity, reason): rows,
                                             file_counter_name(DEVICE_EVENTS, str(events), reason): 1}
    assert files[file_counter_name(DEVICE_EVENTS, str(events), 'parsed')] == 1
