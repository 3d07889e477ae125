"""Query windows: which windows hold a row (the read step pairs rows with them: tests/test_sources.py)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.detect.windows import QueryWindows
from transforms.read.window_lookup import WindowsOf, unit_us

US = 1_000_000
HOUR = 3_600_000_000
DAY = 24 * HOUR


def covering(windows, time_us):
    """The windows reading `time_us`, by their definition: [offset + k * frequency, ... + period) widened
    by the margin on both sides."""
    found = []
    margin = windows.margin_us
    nearest = (time_us - windows.offset_us) // windows.frequency_us
    for k in range(nearest - 20, nearest + 21):   # every window within 5 days of the row (the widest tested)
        start = windows.offset_us + k * windows.frequency_us
        if (start - margin <= time_us < start + windows.period_us + margin
                and windows.in_range(start, start + windows.period_us)):
            found.append((start, start + windows.period_us))
    return found


def test_windows_in_range_follow_the_definition():
    rnd = random.Random(5)
    settings = [(DAY, DAY, 0), (DAY, DAY, 6 * HOUR), (12 * HOUR, 12 * HOUR, 7 * HOUR + 1), (2 * DAY, DAY, 0),
                (3 * DAY, DAY, 5 * HOUR), (DAY, 6 * HOUR, 0)]
    for period, frequency, offset in settings:
        for start, end, margin in ((None, None, 0), (10 * DAY, 20 * DAY, 0), (None, None, 3 * HOUR),
                                   (10 * DAY, 20 * DAY, 3 * HOUR), (None, None, DAY + 1)):
            windows = QueryWindows(period, frequency, offset, start, end, margin)
            times = [rnd.randrange(-50 * DAY, 50 * DAY) for _ in range(300)]
            # Boundaries: a window's first microsecond belongs to it, its end to the next one.
            times += [offset + k * frequency + d + m for k in (-3, 0, 11, 15) for d in (-1, 0, 1)
                      for m in (0, margin, -margin)]
            for time_us in times:
                assert windows.windows_in_range(time_us) == covering(windows, time_us), (period, frequency, time_us)


def test_a_margin_makes_a_window_read_rows_before_and_after_it():
    windows = QueryWindows(DAY, DAY, margin_us=3 * HOUR, start_us=10 * DAY, end_us=12 * DAY)
    assert windows.windows_in_range(11 * DAY - 3 * HOUR - 1) == [(10 * DAY, 11 * DAY)]
    assert windows.windows_in_range(11 * DAY - 3 * HOUR) == [(10 * DAY, 11 * DAY), (11 * DAY, 12 * DAY)]
    assert windows.windows_in_range(11 * DAY + 3 * HOUR - 1) == [(10 * DAY, 11 * DAY), (11 * DAY, 12 * DAY)]
    assert windows.windows_in_range(11 * DAY + 3 * HOUR) == [(11 * DAY, 12 * DAY)]
    # Past --end, a row is still read by the last window in range when it falls in its margin.
    assert windows.windows_in_range(12 * DAY + 3 * HOUR - 1) == [(11 * DAY, 12 * DAY)]
    assert windows.windows_in_range(12 * DAY + 3 * HOUR) == []
    assert windows.windows_in_range(10 * DAY - 3 * HOUR) == [(10 * DAY, 11 * DAY)]


@settings(max_examples=300, deadline=None)
@given(frequency=st.sampled_from([7, 1000, 60 * US, 3600 * US, 86400 * US]), periods=st.integers(1, 4),
       offset=st.integers(-10 ** 12, 10 ** 12), margins=st.sampled_from([0, 1, 3]),
       margin_unit=st.sampled_from([1, 500]), bounded=st.booleans(), seed=st.integers(0, 2 ** 32 - 1), max_spans=st.sampled_from([1, 3, 4096]))
def test_windows_looked_up_once_per_span_are_the_windows_of_each_instant(frequency, periods, offset, margins,
                                                                        margin_unit, bounded, seed, max_spans):
    rnd = random.Random(seed)
    margin = min(margins * margin_unit, 2 * frequency)  # a few windows read each instant, as in a backfill
    start = rnd.randrange(-10 ** 12, 10 ** 12) if bounded else None
    end = None if start is None else start + 5 * frequency * periods
    windows = QueryWindows(frequency * periods, frequency, offset, start, end, margin)
    windows_of = WindowsOf(windows, max_spans)
    around = start if bounded else rnd.randrange(-10 ** 12, 10 ** 12)
    # Instants near one another (as rows read together are) and at the boundaries of the unit's spans.
    unit = unit_us(windows)
    times = [around + rnd.randrange(-20 * frequency * periods, 20 * frequency * periods) for _ in range(200)]
    times += [k * unit + delta for k in (around // unit, around // unit + 1) for delta in (-1, 0, 1)]
    for time_us in times:
        assert windows_of(time_us) == tuple(windows.windows_in_range(time_us)), time_us
        assert 0 < len(windows_of) <= max_spans
