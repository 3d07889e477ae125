"""Query windows: which windows hold a row, and the (window, row) pairs of a batch run."""

import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.windows import AssignQueryWindows, QueryWindows, window_label

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


def test_assign_query_windows_pairs_each_row_with_its_windows():
    sliding = QueryWindows(2 * DAY, DAY)
    rows = [{'TimeGenerated': DAY + 5}, {'TimeGenerated': 5}]
    with TestPipeline(runner='FnApiRunner') as p:
        pairs = p | beam.Create(rows) | AssignQueryWindows(sliding)
        assert_that(pairs | beam.MapTuple(lambda w, row: (window_label(w), row['TimeGenerated'])), equal_to([
            (('1970-01-01T00:00:00.000000Z', '1970-01-03T00:00:00.000000Z'), DAY + 5),
            (('1970-01-02T00:00:00.000000Z', '1970-01-04T00:00:00.000000Z'), DAY + 5),
            (('1969-12-31T00:00:00.000000Z', '1970-01-02T00:00:00.000000Z'), 5),
            (('1970-01-01T00:00:00.000000Z', '1970-01-03T00:00:00.000000Z'), 5)]))
