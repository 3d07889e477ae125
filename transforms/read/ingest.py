"""Typing of exported rows the way Log Analytics ingestion types them.

A raw row is a dict decoded from an export (column name -> JSON value). Typing follows the Kusto
column types of `transforms.read.schema` and the behaviour of the reference evaluation:

* string: a missing key or null is ``""`` (Kusto strings have no null); a non-string JSON value is its
  compact JSON text (``1.5``, ``true``, ``{"a":1}``).
* datetime: ISO 8601, ``T`` or space between date and time, up to any number of fractional digits
  (truncated to microseconds, the reference's precision), ``Z``, ``+hh``, ``+hhmm``, ``+hh:mm`` or
  `` UTC``; no zone means UTC. Only instants of Kusto's datetime range, 0001-01-01 to 9999-12-31
  (UTC), are datetimes. A leap second, second 60 of the last minute (UTC) of a month's last day, is
  second 59 of that minute: Kusto's datetime has no leap-second ticks, and .NET reads a valid leap
  second as second 59 (docs/formats.md gives the sources). Anything else is null. Kept as integer
  microseconds since the epoch.
* long: a JSON integer, or a number or numeric string rounded half away from zero; otherwise null
  (also out of the long range: the work is bounded by the text's length, never by the number's
  size, so ``"1e99999999"`` is null at once).
* dynamic: a JSON string whose text is JSON is parsed (``"{\\"Command\\":\\"x\\"}"``); any other value
  is kept as it is.
"""

import re
from fractions import Fraction
from functools import lru_cache

from transforms.read.bounded_json import FAST_DECODE
from transforms.read.dynamic import parse_json_text, tostring_dynamic
from transforms.read.schema import COLUMNS, DATETIME, DYNAMIC, LONG, STRING

try:  # pragma: no cover - without the compiled scanner the Python parser below is used
    from transforms.read import _blockscan
except ImportError:  # pragma: no cover
    _blockscan = None

_DATETIME = re.compile(
    r'\s*([0-9]+)[-/]([0-9]{1,2})[-/]([0-9]{1,2})'
    r'(?:(?:[T ]([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]*))?)?)'
    r'(?:(Z)|([+-])([0-9]{2})(?::?([0-9]{2}))?|( UTC))?\s*)?')

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_US_PER_DAY = 86_400_000_000
_LAST_SECOND_US = _US_PER_DAY - 1_000_000  # 23:59:59 in a day


def _is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(year, month, day):
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@lru_cache(maxsize=4096)
def _days_of_date(date):
    """Days since the epoch of a ``YYYY-MM-DD`` text, or None when it is not a valid date."""
    digits = date[:4] + date[5:7] + date[8:]
    if not digits.isdigit():
        return None
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    if not 1 <= month <= 12 or not 1 <= day <= (29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]):
        return None
    return _days_from_civil(year, month, day)


def _parse_canonical_python(text):
    """``YYYY-MM-DDThh:mm:ss[.f...]Z`` (how the exports write TimeGenerated) -> microseconds, or None
    for any other text (then the general parser decides). Same result as the general parser.
    `_parse_canonical` is the compiled scanner's ``canonical_us`` where it imports, the same
    function in C (about 60 ns against 3 µs: it is called for every datetime of every candidate row)."""
    if (len(text) < 20 or text[-1] != 'Z' or text[10] != 'T' or text[4] != '-' or text[7] != '-'
            or text[13] != ':' or text[16] != ':' or not text.isascii()):
        return None
    fraction = text[19:-1]
    if fraction and (fraction[0] != '.' or not (len(fraction) == 1 or fraction[1:].isdigit())):
        return None
    clock = text[11:13] + text[14:16] + text[17:19]
    if not clock.isdigit():
        return None
    hour, minute, second = int(clock[:2]), int(clock[2:4]), int(clock[4:])
    if hour > 23 or minute > 59 or second > 59:
        return None  # a leap second (60) is left to the general parser
    days = _days_of_date(text[:10])
    if days is None:
        return None
    micros = int(fraction[1:7].ljust(6, '0')) if len(fraction) > 1 else 0
    return _in_kusto_range(days * _US_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros)


_parse_canonical = _parse_canonical_python if _blockscan is None else _blockscan.canonical_us


def parse_datetime_us(text):
    """An ISO 8601 datetime string -> microseconds since the Unix epoch (UTC), or None."""
    value = _parse_canonical(text)
    if value is not None:
        return value
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m, _utc = match.groups()
    if len(year.lstrip('0')) > 4:
        return None  # after 9999 (and never an int of thousands of digits)
    year, month, day = int(year), int(month), int(day)
    if not 1 <= month <= 12 or day < 1:
        return None
    days_in_month = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]
    if day > days_in_month:
        return None
    hour = int(hour or 0)
    minute = int(minute or 0)
    second = int(second or 0)
    leap = second == 60
    if leap:
        second = 59
    if hour > 24 or minute > 59 or second > 59 or (hour == 24 and (minute or second or (fraction or '').strip('0'))):
        return None
    micros = int((fraction or '')[:6].ljust(6, '0'))
    value = (_days_from_civil(year, month, day) * _US_PER_DAY
             + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros)
    if sign:
        offset = (int(off_h) * 60 + int(off_m or 0)) * 60_000_000
        value += -offset if sign == '+' else offset
    if leap and not _is_leap_second_minute(value):
        return None
    return _in_kusto_range(value)


# Kusto's datetime range: 0001-01-01T00:00:00 to 9999-12-31T23:59:59.9999999 (kept to the microsecond).
MIN_DATETIME_US = _days_from_civil(1, 1, 1) * _US_PER_DAY
MAX_DATETIME_US = _days_from_civil(10000, 1, 1) * _US_PER_DAY - 1


def _in_kusto_range(value):
    return value if MIN_DATETIME_US <= value <= MAX_DATETIME_US else None


def _is_leap_second_minute(value):
    """Whether `value` (read with second 59 for 60) lies in 23:59:59 UTC of the last day of a month,
    where UTC inserts a leap second (ITU-R TF.460)."""
    days, rest = divmod(value, _US_PER_DAY)
    return rest >= _LAST_SECOND_US and _civil_from_days(days + 1)[2] == 1


def _civil_from_days(days):
    """(year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil_from_days)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def format_datetime_us(micros):
    """Microseconds since the epoch -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    days, rest = divmod(micros, _US_PER_DAY)
    y, m, d = _civil_from_days(days)
    seconds, micro = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return '%04d-%02d-%02dT%02d:%02d:%02d.%06dZ' % (y, m, d, hour, minute, second, micro)


def to_datetime_us(value):
    if isinstance(value, str):
        return parse_datetime_us(value)
    return None


_NUMBER = re.compile(r'\s*([+-]?)([0-9][0-9_]*)?(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?\s*')
_HEX = re.compile(r'0[xX]([0-9a-fA-F]+)')
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


def _round_half_away(numerator, denominator):
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def to_long(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if value != value or value in (float('inf'), float('-inf')):
            return None
        exact = Fraction(value)
        result = _round_half_away(exact.numerator, exact.denominator)
    elif isinstance(value, str):
        result = _parse_long_text(value)
        if result is None:
            return None
    else:
        return None
    return result if _LONG_MIN <= result <= _LONG_MAX else None


_LONG_DIGITS = 19  # |any long| < 10 ** 19
_LONG_HEX_DIGITS = 16


def _parse_long_text(text):
    """A numeric text -> its value rounded half away from zero, or None; None too when it is
    sure to be out of the long range. The work is bounded by the length of the text: only the
    digits that can matter are converted, never a number of the exponent's size."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        hex_match = _HEX.fullmatch(text)
        if not hex_match:
            return None
        digits = hex_match.group(1).lstrip('0')
        return int(digits, 16) if len(digits) <= _LONG_HEX_DIGITS else None
    sign, whole, fraction, exponent = match.groups()
    if whole is None and not fraction:
        return None
    if whole is not None and (whole.endswith('_') or '__' in whole):
        return None
    fraction = fraction or ''
    significant = ((whole or '0').replace('_', '') + fraction).lstrip('0')
    if not significant:
        return 0
    exponent = exponent or '0'
    negative_exponent = exponent.startswith('-')
    exponent = exponent.lstrip('+-').lstrip('0') or '0'
    if len(exponent) > 12:  # |exponent| >= 10 ** 12: more than any text's digits
        return 0 if negative_exponent else None
    # value = significant * 10 ** -scale, with `magnitude` digits before the decimal point.
    scale = len(fraction) + (int(exponent) if negative_exponent else -int(exponent))
    magnitude = len(significant) - scale
    if magnitude > _LONG_DIGITS:
        return None
    if magnitude < 0:
        return 0  # below 0.1
    if scale > 0 and len(significant) > magnitude + 1:
        # Half away from zero needs the integer digits and the first fractional digit only.
        significant, scale = significant[:magnitude + 1], 1
    numerator = int(significant)
    if sign == '-':
        numerator = -numerator
    if scale <= 0:
        return numerator * 10 ** (-scale)
    return _round_half_away(numerator, 10 ** scale)


def to_dynamic(value):
    if isinstance(value, str):
        return parse_json_text(value)
    return value


_CONVERTERS = {STRING: tostring_dynamic, DATETIME: to_datetime_us, LONG: to_long, DYNAMIC: to_dynamic}


_PLANS = {table: tuple((column, kind, _CONVERTERS[kind]) for column, kind in columns.items())
          for table, columns in COLUMNS.items()}


def typed_row(table, raw):
    """The typed row of `table` (the columns of `transforms.read.schema`) from a decoded export row."""
    row = {}
    get = raw.get
    for column, kind, convert in _PLANS[table]:
        value = get(column)
        if kind is STRING and value.__class__ is str:
            row[column] = value
        elif column == 'Timestamp' and value is not None and value == get('TimeGenerated'):
            row[column] = row['TimeGenerated']  # Defender rows: usually the same text, parsed once
        else:
            row[column] = convert(value)
    return row


# The compiled typing's code of each column kind.
_KIND_CODES = {STRING: ord('s'), DATETIME: ord('d'), LONG: ord('l'), DYNAMIC: ord('y')}


def _typed_dynamic(raw):
    """A dynamic column's typed value from its JSON text (bytes), as `typed_row` types the decoded value."""
    return to_dynamic(FAST_DECODE(raw))


class NativeTyper:
    """``typer(line)``: the typed row of `table` from one JSON line in one compiled call, or None
    where the Python typing decides (`typed_row` of the decoded line, or a dead letter).

    For the lines the block scanner vouches for as plain rows (`transforms.read.blockscan`): it
    reads the line's top-level keys, types the table's columns as `typed_row` does and skips the
    others. It takes only what it types exactly as Python does: a string column's string (escapes
    decoded) or null; a datetime column's canonical export text (else Python's parser decides) or a
    value that is no string (null); a long column's integer of at most 18 digits or null; a
    dynamic column's value, decoded by msgspec and typed by `to_dynamic`. Any other value, a key
    spelled with escapes, a TimeGenerated that is no datetime, or a line it cannot read makes it
    answer None. tests/test_ingest.py compares it with `typed_row` on generated and hostile lines.
    Built by the JSON lines reader where the lines are read (`native_typer`).
    """

    def __init__(self, table):
        self._columns = tuple(COLUMNS[table])
        self._kinds = bytes(_KIND_CODES[kind] for kind in COLUMNS[table].values())

    def __call__(self, line):
        row = _blockscan.typed_row(line, self._columns, self._kinds, _typed_dynamic)
        return row if row is not None and row['TimeGenerated'] is not None else None


def native_typer(table):
    """A `NativeTyper` of `table`, or None without the compiled scanner, msgspec, or a known table."""
    if _blockscan is None or FAST_DECODE is None or table not in COLUMNS:
        return None
    return NativeTyper(table)
