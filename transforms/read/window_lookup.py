"""The query windows that read a row, looked up once per span of time rather than once per row.

The read step gives every row the windows inside --start/--end that read its TimeGenerated
(`transforms.detect.windows.QueryWindows.windows_in_range`, passed in as `windows`). Every window
boundary and margin is a multiple of the gcd of the windows' period, frequency, offset and margin, so
all the instants of one ``[k * unit, (k + 1) * unit)`` span are read by the same windows: the rows
read together, mostly hours apart at most, need one lookup per span.
"""

import math


def unit_us(windows):
    """The longest span (microseconds) whose every aligned interval is read by one set of windows."""
    return math.gcd(windows.period_us, windows.frequency_us, windows.offset_us, windows.margin_us)


class WindowsOf:
    """``windows_of(time_us)``: ``tuple(windows.windows_in_range(time_us))``, computed once per `unit_us`
    span. Holds at most `max_spans` spans, and starts afresh past them."""

    def __init__(self, windows, max_spans=4096):
        self._windows = windows
        self._unit = unit_us(windows)
        self._max_spans = max_spans
        self._by_span = {}

    def __call__(self, time_us):
        span = time_us // self._unit
        labels = self._by_span.get(span)
        if labels is None:
            if len(self._by_span) >= self._max_spans:
                self._by_span.clear()
            labels = self._by_span[span] = tuple(self._windows.windows_in_range(time_us))
        return labels

    def __len__(self):
        """How many spans' windows it holds."""
        return len(self._by_span)
