"""Validation and window counting of the JSON lines the prefilter proves irrelevant, a block at a time.

With ``--scan full`` every record is decoded enough to be validated (JSON, UTF-8, nesting depth, a
``TimeGenerated`` the row types as a datetime) and counted per query window, but the records that
the byte prefilter (`transforms.read.prefilter`) proves irrelevant to the rule never become rows.
For them `BulkValidator` does in a few native calls per block what the per-line reader
(`transforms.read.formats.json_lines`, the reference) does line by line in Python:

* ``msgspec`` decodes every line of the block in one call (``Decoder.decode_lines``) into a struct
  holding only ``TimeGenerated`` (a required string), and fails on any key that would make the line
  something else than a plain row (``properties``, ``Type``, ``$table``);
* with ``key_columns`` (the table's, `transforms.read.schema.KEY_COLUMNS`), every line must hold
  one of them, else the per-line reader decides (a record of another table is a dead letter there):
  the first is a required field of the struct, kept undecoded (exports hold it in every row); only
  a block that fails so is decoded again with all of them optional, to look for the others;
* byte-level checks cover what msgspec does not check as Python's JSON decoder does: every line
  holds exactly one object (each line starts with ``{`` and ends with ``}``), the block is UTF-8,
  no line has more than 64 opening brackets (the bound of `transforms.read.bounded_json`);
* every ``TimeGenerated`` is in the canonical export form (one regular expression over the block's
  values joined), and rows are counted per day, hour, minute or second prefix, each prefix parsed
  once, the longest unit every window boundary falls on; else each value is parsed.

Whenever a block holds anything else (a bad line, another shape, another datetime form, a value
msgspec rejects and Python accepts such as ``NaN`` or a lone surrogate escape), `count` says so
and changes nothing: the block's lines then go through the per-line reader, which decides
(dead letter, row, skipped record) exactly as without this module. It only ever accepts blocks on
which the per-line reader would produce valid rows of known windows and no dead letter, so the
outputs are the same with or without it; tests/test_bulk.py compares both on generated and
hostile blocks. Without msgspec (it cannot be imported) `available()` is False and the reader
decodes every line in Python.
"""

import collections
import operator
import re

from transforms.read.bounded_json import MAX_JSON_DEPTH
from transforms.read.ingest import _parse_canonical
from transforms.read.window_lookup import unit_us

try:  # pragma: no cover - the fallback is tested by forcing it
    import msgspec
except ImportError:  # pragma: no cover
    msgspec = None

_MINUTE_US = 60_000_000
_SECOND_US = 1_000_000
_MAX_PREFIXES = 4096  # the TimeGenerated prefixes whose windows `BulkValidator.window_counts` keeps
# The canonical export form, as transforms.read.ingest._parse_canonical accepts it, one per line.
_CANONICAL_LINES = re.compile(
    r'(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]*)?Z\n)*')
# Opening brackets and newlines are kept, everything else deleted: a line of more than
# MAX_JSON_DEPTH of them may nest too deep (brackets inside strings count too: such a line goes
# to the per-line reader, which decides).
_BRACKETS_AND_NEWLINES = b'[{\n'
_NOT_BRACKET = bytes(byte for byte in range(256) if byte not in _BRACKETS_AND_NEWLINES)
_TOO_MANY_BRACKETS = re.compile(rb'[^\n]{%d}' % (MAX_JSON_DEPTH + 1))
_LINE_BREAK = b'}\n{'


def available():
    """Whether the native decoder can be used (msgspec imports)."""
    return msgspec is not None


def plain_row_type(key_columns=(), first_required=False):
    """The struct of a plain row: the columns it must have and must not have (any of these keys: not
    plain); and `key_columns`, kept undecoded (empty when the line lacks them). With `first_required`
    only the first of `key_columns`, which every row must then hold: decoding one undecoded column
    instead of four or five makes the decoding 10-30% faster (realistic 1M, each table: 1.3-1.8
    against 1.8-2.1 ns a byte, alternating in one process)."""
    fields = [('TimeGenerated', str)]
    if first_required:
        fields.extend((column, msgspec.Raw) for column in key_columns[:1])
    fields += [('properties', msgspec.UnsetType, msgspec.UNSET),
               ('Type', msgspec.UnsetType, msgspec.UNSET),
               ('table', msgspec.UnsetType, msgspec.field(name='$table', default=msgspec.UNSET))]
    if not first_required:
        fields.extend((column, msgspec.Raw, msgspec.Raw()) for column in key_columns)
    return msgspec.defstruct('PlainRow', fields, gc=False)


# (characters of a canonical datetime, what completes them into the first instant they name, unit).
# The hour is always in the prefix: parsing the prefix checks it (the minutes and seconds are checked
# by _CANONICAL_LINES or by _same_canonical_shape).
_PREFIXES = ((13, ':00:00Z', 3_600 * _SECOND_US), (16, ':00Z', _MINUTE_US), (19, 'Z', _SECOND_US))
_DIGITS_TO_ZERO = bytes.maketrans(b'123456789', b'000000000')
_NOT_BELOW_SIX = re.compile(rb'[^0-5]')


def _prefix(windows):
    """(length, completion) of the prefix of a canonical datetime that decides its windows: to the
    hour, minute or second, the longest unit that every window boundary is a multiple of; None
    when no whole second is (each value is then parsed)."""
    if windows is None:
        return _PREFIXES[0][:2]
    windows_unit = unit_us(windows)  # every boundary is a multiple of it, and so of each unit dividing it
    for length, completion, unit in _PREFIXES:
        if windows_unit % unit == 0:
            return length, completion
    return None


class BulkValidator:
    """``validator(text)``: validate and count a block of irrelevant JSON lines natively.

    `windows`: the run's `QueryWindows` (None: rows are only counted as parsed). Picklable; the
    decoder is built where it is first used.
    """

    def __init__(self, windows=None, key_columns=()):
        self._windows = windows
        self._key_columns = tuple(key_columns)
        self._prefix = _prefix(windows)
        self._decoder = self._any_key_decoder = None
        self._windows_by_prefix = {}  # {TimeGenerated prefix: its windows} of window_counts

    def __getstate__(self):
        return {'windows': self._windows, 'key_columns': self._key_columns}

    def __setstate__(self, state):
        self.__init__(state['windows'], state['key_columns'])

    def _checked_times(self, text):
        # (times, their text joined with a newline after each, whether all have one shape) or None.
        # The lines of `text` are counted in the bracket pass's small output.
        if not text:
            return [], '', False
        if text[:1] != b'{' or not text.endswith(b'}\n'):
            return None
        brackets = text.translate(None, _NOT_BRACKET)
        lines = brackets.count(b'\n')
        if text.count(_LINE_BREAK) != lines - 1 or not _utf8(text) or _TOO_MANY_BRACKETS.search(brackets):
            return None
        if self._decoder is None:
            self._decoder = msgspec.json.Decoder(plain_row_type(self._key_columns, first_required=True))
        try:
            rows = self._decoder.decode_lines(text)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            rows = self._rows_with_any_key_column(text)
            if rows is None:
                return None
        if len(rows) != lines:
            return None  # cannot happen after the checks above; kept as a guard
        times = [row.TimeGenerated for row in rows]
        joined = '\n'.join(times) + '\n'
        same_shape = _same_canonical_shape(times[0], joined, lines)
        if not same_shape and _CANONICAL_LINES.fullmatch(joined) is None:
            return None
        return times, joined, same_shape

    def _rows_with_any_key_column(self, text):
        # A block the first decoding refused, when the reason may be a row without the first key column:
        # its rows if each holds another key column (and is otherwise a plain row), else None.
        if not self._key_columns:
            return None
        if self._any_key_decoder is None:
            self._any_key_decoder = msgspec.json.Decoder(plain_row_type(self._key_columns))
        try:
            rows = self._any_key_decoder.decode_lines(text)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        getters = [operator.attrgetter(column) for column in self._key_columns]
        if all(any(len(getter(row)) for getter in getters) for row in rows):
            return rows
        return None  # a row with none of the table's key columns: the per-line reader decides

    def __call__(self, text):
        """The block's counts, ``(parsed, outside_range, {window label: rows})`` (see `add`), or
        None when any line of the block needs the per-line reader (every line of an accepted block
        is parsed: ``parsed`` is their number)."""
        checked = self._checked_times(text)
        if checked is None:
            return None
        times, joined, same_shape = checked
        if self._prefix is None:
            groups = collections.Counter(times)
        else:
            length = self._prefix[0]
            first = times[0][:length] if times else ''
            # Texts of one canonical shape hold their prefix only at their start: one count says
            # whether the whole block lies in one hour (minute, second), as sorted exports mostly do.
            if same_shape and joined.count(first) == len(times):
                groups = {first: len(times)}
            else:
                groups = collections.Counter(map(operator.itemgetter(slice(0, length)), times))
        counted = self.window_counts(groups)
        if counted is None:
            return None
        return (len(times),) + counted

    def window_counts(self, groups):
        """(outside_range, {window label: rows}) of `groups`, {canonical TimeGenerated text, or its
        prefix of `prefix_length` characters: rows}, each completed into the first instant it names
        and parsed once (the windows of up to _MAX_PREFIXES prefixes are kept from block to block);
        None when one is not a date (2024-02-30) or outside Kusto's range."""
        suffix = self._prefix[1] if self._prefix else ''
        windows, per_window, outside, known = self._windows, {}, 0, self._windows_by_prefix
        for key, rows in groups.items():
            labels = known.get(key)
            if labels is None:
                micros = _parse_canonical(key + suffix)
                if micros is None:
                    return None
                if windows is None:
                    continue
                if len(known) >= _MAX_PREFIXES:
                    known.clear()
                labels = known[key] = tuple(windows.windows_in_range(micros))
            if not labels:
                outside += rows
            for label in labels:
                per_window[label] = per_window.get(label, 0) + rows
        return outside, per_window

    @property
    def prefix_length(self):
        """How many leading characters of TimeGenerated decide the windows (0: the whole text)."""
        return self._prefix[0] if self._prefix else 0


def add(result, counts):
    """Adds one block's result of `BulkValidator` to the read step's `counts` (``parsed``,
    ``outside_range``, ``windows``: {label: rows})."""
    parsed, outside, per_window = result
    counts['parsed'] += parsed
    counts['outside_range'] += outside
    totals = counts['windows']
    for label, rows in per_window.items():
        totals[label] = totals.get(label, 0) + rows


def _same_canonical_shape(first, joined, count):
    """Whether the `count` texts of `joined` (each followed by a newline) all have the shape of
    `first` with other digits, a canonical shape (``0000-00-00T00:00:00[.0...]Z``), and minutes
    and seconds below 60: then each is in the form _CANONICAL_LINES accepts, except for the hour,
    which parsing each prefix checks. A few passes in C over the block's values, instead of a
    regular expression's far slower walk."""
    stride = len(first) + 1
    if len(joined) != stride * count or not joined.isascii():
        return False
    shape = first.encode('ascii').translate(_DIGITS_TO_ZERO)
    if not (shape[:19] == b'0000-00-00T00:00:00' and shape[-1:] == b'Z'
            and (len(shape) == 20 or (shape[19:20] == b'.' and shape[20:-1] == b'0' * (len(shape) - 21)))):
        return False
    data = joined.encode('ascii')
    # Every character of every text at its place: the digits anywhere else, or any other character,
    # would differ from the shape repeated.
    if data.translate(_DIGITS_TO_ZERO) != (shape + b'\n') * count:
        return False
    return not _NOT_BELOW_SIX.search(data[14::stride]) and not _NOT_BELOW_SIX.search(data[17::stride])


def _utf8(text):
    if text.isascii():
        return True
    try:
        text.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True
