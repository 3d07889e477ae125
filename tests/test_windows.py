"""Query windows: which windows hold a row (the read step pairs rows with them: tests/test_sources.py)."""

import random

from transforms.detect.windows import QueryWindows

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
