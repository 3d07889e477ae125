"""Query windows: which windows hold a row, and the (window, row) pairs of a batch run."""

import json
import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.read.schema import DEVICE_EVENTS
from transforms.read.sources import ReadTable
from transforms.detect.windows import QueryWindows, window_label
from pipelines.options import IN_PROCESS_RUNNER
from pipelines.rare_runcommand import counters
from transforms.write.run_report import build_summary

HOUR = 3_600_000_000
DAY = 24 * HOUR


def covering(windows, time_us):
    """The windows holding `time_us`, by their definition: [offset + k * frequency, ... + period)."""
    found = []
    for k in range(-400, 400):
        start = windows.offset_us + k * windows.frequency_us
        if start <= time_us < start + windows.period_us and windows.in_range(start, start + windows.period_us):
            found.append((start, start + windows.period_us))
    return found


def test_windows_in_range_follow_the_definition():
    rnd = random.Random(5)
    settings = [(DAY, DAY, 0), (DAY, DAY, 6 * HOUR), (12 * HOUR, 12 * HOUR, 7 * HOUR + 1), (2 * DAY, DAY, 0),
                (3 * DAY, DAY, 5 * HOUR), (DAY, 6 * HOUR, 0)]
    for period, frequency, offset in settings:
        for start, end in ((None, None), (10 * DAY, 20 * DAY)):
            windows = QueryWindows(period, frequency, offset, start, end)
            times = [rnd.randrange(-50 * DAY, 50 * DAY) for _ in range(300)]
            # Boundaries: a window's first microsecond belongs to it, its end to the next one.
            times += [offset + k * frequency + d for k in (-3, 0, 11, 15) for d in (-1, 0, 1)]
            for time_us in times:
                assert windows.windows_in_range(time_us) == covering(windows, time_us), (period, frequency, time_us)


def test_read_step_pairs_each_row_with_its_windows_in_range(tmp_path):
    # Sliding 2-day windows every day, only those inside [-1d, 3d): each row in every such window that
    # holds it; the row at 3d + 5 us is only in [2d, 4d) and [3d, 5d), outside the range: not produced.
    path = tmp_path / 'DeviceEvents.jsonl'
    times = ['1970-01-02T00:00:00.000005Z', '1970-01-01T00:00:00.000005Z', '1970-01-03T00:00:00.000005Z',
             '1970-01-04T00:00:00.000005Z']
    path.write_text(''.join(json.dumps({'TimeGenerated': t}) + '\n' for t in times))
    sliding = QueryWindows(2 * DAY, DAY, 0, -DAY, 3 * DAY)
    p = TestPipeline(runner=IN_PROCESS_RUNNER)
    read = p | ReadTable(DEVICE_EVENTS, str(path), windows=sliding)
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
    assert build_summary(counted)['tables'][DEVICE_EVENTS] == {
        'read': 4, 'parsed': 4, 'dead_lettered': 0, 'skipped_irrelevant': 0, 'outside_range': 1}
