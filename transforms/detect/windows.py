"""Query windows: the scheduled rule's queryPeriod/queryFrequency over event time (TimeGenerated).

A scheduled rule runs every queryFrequency over the last queryPeriod of data. A backfill reproduces
that with windows ``[offset + k * frequency, offset + k * frequency + period)``: fixed windows when
the two are equal, sliding (overlapping) windows when the period is longer. Each row belongs to
every window covering its TimeGenerated, and each window is evaluated on its own rows only.

A window may also read a margin of rows before its start and after its end (`QueryWindows.margin_us`,
strict semantics' look-ahead): a row is then read by every window ``[s, e)`` with
``s - margin <= TimeGenerated < e + margin``. The sentinel semantics read no margin.

In a batch run the window is explicit: the detection's collections hold ``(window, value)`` pairs,
``window`` being ``(start, end)`` in microseconds, and every grouping key starts with the window.
That is what Beam's event-time windows would compute, without their per-element machinery: a
batch GroupByKey over non-global windows goes through the general trigger driver for every
element, which cost more than the whole detection (see benchmarks/README.md). The streaming
detection (`transforms.detect.streaming`) evaluates each window with the same stage functions.
"""

import re

import apache_beam as beam

from transforms.read.ingest import format_datetime_us, parse_datetime_us

US = 1_000_000
_UNITS = {
    'd': 86400 * US, 'day': 86400 * US, 'days': 86400 * US,
    'h': 3600 * US, 'hr': 3600 * US, 'hrs': 3600 * US, 'hour': 3600 * US, 'hours': 3600 * US,
    'm': 60 * US, 'min': 60 * US, 'minute': 60 * US, 'minutes': 60 * US,
    's': US, 'sec': US, 'second': US, 'seconds': US,
    'ms': 1000, 'milli': 1000, 'millis': 1000, 'millisecond': 1000, 'milliseconds': 1000,
    'microsecond': 1, 'microseconds': 1,
}
_LITERAL = re.compile(r'([+-]?)\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)')
_CLOCK = re.compile(r'([+-]?)(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?')


def parse_timespan(text):
    """A Kusto timespan literal (``5m``, ``2h``, ``1d``, ``1.5h``, ``1.00:00:00``, ``time(1d)``) -> microseconds."""
    value = str(text).strip()
    if value.startswith('time(') and value.endswith(')'):
        value = value[5:-1].strip()
    match = _LITERAL.fullmatch(value)
    if match and match.group(3).lower() in _UNITS:
        sign, number, unit = match.groups()
        micros = round(float(number) * _UNITS[unit.lower()]) if '.' in number else int(number) * _UNITS[unit.lower()]
        return -micros if sign == '-' else micros
    match = _CLOCK.fullmatch(value)
    if match:
        sign, days, hours, minutes, seconds, fraction = match.groups()
        micros = ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 * US + int(seconds or 0) * US
        micros += int((fraction or '').ljust(7, '0')[:6] or 0)
        return -micros if sign == '-' else micros
    raise ValueError('not a Kusto timespan: %r (examples: 5m, 2h, 1d, 1.00:00:00)' % text)


def parse_instant(text):
    """An ISO 8601 instant for --start/--end -> microseconds since the epoch (no zone means UTC)."""
    micros = parse_datetime_us(text)
    if micros is None:
        raise ValueError('not an ISO 8601 datetime: %r' % text)
    return micros


class QueryWindows:
    """The windows of a backfill: period, frequency, offset and an optional [start, end) range."""

    def __init__(self, period_us, frequency_us, offset_us=0, start_us=None, end_us=None, margin_us=0):
        if period_us <= 0 or frequency_us <= 0:
            raise ValueError('query period and frequency must be positive')
        if period_us < frequency_us:
            raise ValueError('a query period shorter than the frequency would leave rows unevaluated')
        if margin_us < 0:
            raise ValueError('a window cannot read a negative margin')
        self.margin_us = margin_us
        self.period_us = period_us
        self.frequency_us = frequency_us
        self.offset_us = offset_us % frequency_us
        self.start_us = start_us
        self.end_us = end_us

    def starts_covering(self, time_us):
        """Start of every window [s, s + period) that holds `time_us`."""
        first = (time_us - self.offset_us - self.period_us) // self.frequency_us + 1
        last = (time_us - self.offset_us) // self.frequency_us
        return [self.offset_us + k * self.frequency_us for k in range(first, last + 1)]

    def starts_reading(self, time_us):
        """Start of every window [s, s + period) that reads `time_us`: s - margin <= time < s + period + margin."""
        if not self.margin_us:
            return self.starts_covering(time_us)
        first = (time_us - self.offset_us - self.period_us - self.margin_us) // self.frequency_us + 1
        last = (time_us - self.offset_us + self.margin_us) // self.frequency_us
        return [self.offset_us + k * self.frequency_us for k in range(first, last + 1)]

    def windows_in_range(self, time_us):
        """(start, end) of every window inside --start/--end that reads `time_us` (holds it, or has it in
        its margin)."""
        period = self.period_us
        if period == self.frequency_us and not self.margin_us:  # fixed windows: exactly one holds the row
            start = time_us - (time_us - self.offset_us) % period
            return [(start, start + period)] if self.in_range(start, start + period) else []
        return [(s, s + period) for s in self.starts_reading(time_us) if self.in_range(s, s + period)]

    def in_range(self, start_us, end_us):
        return ((self.start_us is None or start_us >= self.start_us)
                and (self.end_us is None or end_us <= self.end_us))


def window_label(window_us):
    """(QueryPeriodStart, QueryPeriodEnd) as Log Analytics datetime text."""
    start, end = window_us
    return format_datetime_us(start), format_datetime_us(end)


def key_in_window(window, keyed):
    """``(key, value)`` of a window -> ``((window, key), value)``: every grouping key starts with the window."""
    key, value = keyed
    return (window, key), value


class CountPerWindow(beam.PTransform):
    """``(window, value)`` pairs -> ``(window, number of values)``: a side input of per-window totals."""

    def expand(self, pairs):
        return pairs | 'WindowOfValue' >> beam.Keys() | 'CountPerWindow' >> beam.combiners.Count.PerElement()
