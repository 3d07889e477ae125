"""Export formats of the three tables: detection per file and decoding into Log Analytics rows.

A format reader turns the bytes of one file (or of one byte range of it) into a stream of
``Decoded`` rows (column name -> JSON value, named as in the Log Analytics table) and
``Undecodable`` records (with position and reason). Typing of the values is not done here but in
`transforms.read.ingest`, the same way for every format.
"""

import json
import re
from typing import NamedTuple

from transforms.read import dead_letter as reasons

MAX_RECORD_BYTES = 1 << 20
BLOCK_BYTES = 256 << 10  # small enough for a block and its lower-cased copy to stay in the CPU cache


class Decoded(NamedTuple):
    position: dict
    row: dict


class Undecodable(NamedTuple):
    position: dict
    reason: str
    raw: bytes


class LineReader:
    """Lines of a byte stream from `start` (after the first newline at or after it, unless 0)
    whose first byte lies before the end of the range, with their offsets and 1-based numbers.

    `claim(offset)` is asked before each line is produced and ends the reading when it says no
    (the range tracker of a split); lines starting at or after `stop` (the range's end, when
    given) are left to the next range and not read. With `needles` (a bytes regex, or
    `LiteralNeedles`), only the lines matching them are produced; the others are skipped without
    being split out of the block. `lines_seen` counts every line of the range passed over.

    Line numbers are counted from the range's first line (1); `absolute_line(n)` turns one into
    the line number in the file, counting the newlines before the range once, only when asked
    (for a dead letter), so that reading a split never re-reads the file before it.
    """

    def __init__(self, stream, start, claim, needles=None, block_bytes=BLOCK_BYTES, stop=None):
        self._stream = stream
        self._start = start
        self._claim = claim
        self._needles = needles
        self._block_bytes = block_bytes
        self._stop = stop
        self._first_offset = start
        self._base = None
        self._block_lines = 0
        self.lines_seen = 0
        self.lines_produced = 0

    def absolute_line(self, number):
        """The line number in the whole file of the range's line `number`."""
        if self._base is None:
            self._base = self._line_number_at(self._first_offset) - 1
        return self._base + number

    def _line_number_at(self, offset):
        # 1 + the number of newlines before `offset`; read only when a split starts mid-file.
        if offset == 0:
            return 1
        position = self._stream.tell()
        self._stream.seek(0)
        count, remaining = 0, offset
        while remaining > 0:
            chunk = self._stream.read(min(remaining, self._block_bytes))
            if not chunk:
                break
            count += chunk.count(b'\n')
            remaining -= len(chunk)
        self._stream.seek(position)
        return count + 1

    def _matching_lines(self, complete):
        # (index of line in block, start, end) of the lines of `complete` matching the needles.
        if self._needles is None:
            lines = complete.split(b'\n')[:-1]
            self._block_lines = len(lines)
            start = 0
            for index, line in enumerate(lines):
                yield index, start, start + len(line)
                start += len(line) + 1
            return
        search = self._needles.search
        position = index = 0
        while True:
            match = search(complete, position)
            if match is None:
                # The block's lines, counted in the same single pass as the line indexes.
                self._block_lines = index + complete.count(b'\n', position)
                return
            line_start = complete.rfind(b'\n', 0, match.start()) + 1
            # The line holding the match's start (a match spanning a raw newline is not a line's).
            line_end = complete.find(b'\n', match.start())
            index += complete.count(b'\n', position, line_start)
            yield index, line_start, line_end
            index += 1
            position = line_end + 1

    def __iter__(self):
        """Yields (offset, line_number, line bytes, or None for a line over MAX_RECORD_BYTES)."""
        stream = self._stream
        offset = self._start
        if offset > 0:
            stream.seek(offset - 1)
            offset += len(stream.readline()) - 1
        self._first_offset = offset
        first_line = 1  # line numbers count from the range's first line (see absolute_line)
        lines_before = 0  # lines of the range before buffer_offset
        buffer, buffer_offset = b'', offset
        dropping = False  # inside a line longer than MAX_RECORD_BYTES
        while True:
            block = stream.read(self._block_bytes)
            if not block:
                if not buffer:
                    break
                block = b'\n'  # a last line without a newline
            if dropping:
                newline = block.find(b'\n')
                if newline < 0:
                    buffer_offset += len(block)
                    continue
                block, buffer_offset, dropping = block[newline + 1:], buffer_offset + newline + 1, False
            data = buffer + block if buffer else block
            end = data.rfind(b'\n')
            if end < 0:
                if len(data) <= MAX_RECORD_BYTES:
                    buffer = data
                    continue
                # A line too long to keep: report it and drop the rest of it.
                if (self._stop is not None and buffer_offset >= self._stop) or not self._claim(buffer_offset):
                    return
                self.lines_seen += 1
                self.lines_produced += 1
                yield buffer_offset, first_line + lines_before, None
                lines_before += 1
                buffer, buffer_offset, dropping = b'', buffer_offset + len(data), True
                continue
            complete, buffer = data[:end + 1], data[end + 1:]
            last_block = False
            if self._stop is not None and buffer_offset + len(complete) > self._stop:
                # Keep the lines that start before the range's end; the rest is the next range's.
                cut = complete.find(b'\n', max(0, self._stop - buffer_offset - 1)) + 1
                complete, last_block = complete[:cut], True
            for index, line_start, line_end in self._matching_lines(complete):
                if not self._claim(buffer_offset + line_start):
                    self.lines_seen += index
                    return
                line = complete[line_start:line_end]
                self.lines_produced += 1
                yield (buffer_offset + line_start, first_line + lines_before + index,
                       line if len(line) <= MAX_RECORD_BYTES else None)
            total = self._block_lines
            self.lines_seen += total
            lines_before += total
            if last_block:
                return
            buffer_offset += end + 1


# --------------------------------------------------------------------------------------------
# Reasons of the dead letters written by the format readers (besides those of `dead_letter`).
# --------------------------------------------------------------------------------------------
BAD_ENVELOPE = 'records envelope whose "records" is not a list'
NESTED_ENVELOPE = 'records envelope inside a records envelope'
NO_PROPERTIES = 'Defender streaming record without a "properties" object'
INCOMPLETE_JSON = 'incomplete JSON document at the end of the file'

BOM = b'\xef\xbb\xbf'

# Record shapes inside the JSON formats.
ROW = 'row'                     # a Log Analytics row (table's own column names)
ENVELOPE = 'records'            # {"records": [...]}
ACTIVITY = 'activity_log'       # Azure Activity Log through diagnostic settings (camelCase)
DEFENDER = 'defender_streaming'  # Defender XDR streaming API record (row in "properties")

DEFENDER_CATEGORY_PREFIX = 'AdvancedHunting-'
TABLE_KEYS = ('Type', '$table')  # Log Analytics columns naming the table of a row


def _decode_object(line):
    """A JSON object from one line of bytes, or the reason it is not one."""
    try:
        text = line.decode('utf-8')
    except UnicodeDecodeError:
        return None, reasons.INVALID_UTF8
    try:
        value = json.loads(text)
    except ValueError:
        return None, reasons.NOT_JSON
    if not isinstance(value, dict):
        return None, reasons.NOT_OBJECT
    return value, None


def sniff_shape(record):
    """The shape of one decoded JSON object, or None when it shows none (a row, or unknown)."""
    if 'records' in record and 'TimeGenerated' not in record:
        return ENVELOPE
    category = record.get('category')
    if isinstance(category, str) and category.startswith(DEFENDER_CATEGORY_PREFIX) and 'properties' in record:
        return DEFENDER
    if 'operationName' in record and 'time' in record and 'TimeGenerated' not in record:
        return ACTIVITY
    return None


def _other_table(row, table):
    """Whether a Log Analytics row says it belongs to another table (column Type or $table)."""
    for key in TABLE_KEYS:
        name = row.get(key)
        if isinstance(name, str) and name and name.lower() != table.lower():
            return True
    return False


def defender_row(record, table):
    """(row, reason); row None and reason None: a record of another table, skipped."""
    properties = record.get('properties')
    if not isinstance(properties, dict):
        return None, NO_PROPERTIES
    category = record.get('category')
    if (table is not None and isinstance(category, str) and category.startswith(DEFENDER_CATEGORY_PREFIX)
            and category[len(DEFENDER_CATEGORY_PREFIX):].lower() != table.lower()):
        return None, None
    row = dict(properties)
    # The event time is Timestamp; the record's "time" is a later publish time and is never used.
    row['TimeGenerated'] = properties.get('Timestamp')
    return row, None


def record_rows(record, table, default=ROW, position=None, inside_envelope=False):
    """The rows of one decoded JSON object: Decoded / Undecodable items (None = skipped record).

    The shape is sniffed per object (`sniff_shape`); `default` is the shape of an object that
    shows none. An envelope's records are decoded one by one, each with its `index`.
    """
    from transforms.read.formats.activity_log import activity_row
    from transforms.read.schema import AZURE_ACTIVITY
    position = position or {}
    shape = sniff_shape(record) or default
    if shape == ENVELOPE:
        if inside_envelope:
            yield Undecodable(position, NESTED_ENVELOPE, json.dumps(record, ensure_ascii=False).encode('utf-8'))
            return
        records = record.get('records')
        if not isinstance(records, list):
            yield Undecodable(position, BAD_ENVELOPE, json.dumps(record, ensure_ascii=False).encode('utf-8'))
            return
        inner_default = ROW if default == ENVELOPE else default
        for index, item in enumerate(records):
            inner = dict(position, index=index)
            if not isinstance(item, dict):
                yield Undecodable(inner, reasons.NOT_OBJECT, json.dumps(item, ensure_ascii=False).encode('utf-8'))
                continue
            yield from record_rows(item, table, inner_default, inner, inside_envelope=True)
        return
    if shape == DEFENDER:
        row, reason = defender_row(record, table)
        if reason:
            yield Undecodable(position, reason, json.dumps(record, ensure_ascii=False).encode('utf-8'))
        elif row is not None:
            yield Decoded(position, row)
        return
    if shape == ACTIVITY:
        if table is None or table == AZURE_ACTIVITY:
            yield Decoded(position, activity_row(record))
        return
    if table is not None and _other_table(record, table):
        return
    yield Decoded(position, record)


def value_rows(value, table, default, position):
    """The rows of one JSON value of a document: an object, or an array of them (each with its
    ``index``); an item that is not an object is Undecodable."""
    values = value if isinstance(value, list) else [value]
    for index, item in enumerate(values):
        item_position = dict(position, index=index) if isinstance(value, list) else position
        if not isinstance(item, dict):
            yield Undecodable(item_position, reasons.NOT_OBJECT, json.dumps(item, ensure_ascii=False).encode('utf-8'))
            continue
        yield from record_rows(item, table, default, item_position)


def _json_line_reader(default):
    def read(lines, stream=None, table=None, needles=None):
        for offset, number, line in lines:
            position = {'line': number, 'offset': offset}
            if line is None:
                yield Undecodable(position, reasons.TOO_LONG, b'')
                continue
            if offset == 0 and line.startswith(BOM):
                line = line[len(BOM):]
            if line.endswith(b'\r'):
                line = line[:-1]
            if not line.strip():
                continue
            value, reason = _decode_object(line)
            if reason:
                yield Undecodable(position, reason, line)
            elif (default == ROW and 'TimeGenerated' in value and 'properties' not in value
                  and 'Type' not in value and '$table' not in value):
                yield Decoded(position, value)  # a plain row: what record_rows would decide, sooner
            else:
                yield from record_rows(value, table, default, position)
    read.__name__ = 'read_' + default
    read.__doc__ = 'JSON lines, one object per line; objects of shape %r unless they show another.' % default
    return read


read_json_lines = _json_line_reader(ROW)
read_records = _json_line_reader(ENVELOPE)
read_activity_log = _json_line_reader(ACTIVITY)
read_defender_streaming = _json_line_reader(DEFENDER)


def json_values(text, first_line=1):
    """Consecutive JSON values of a text (whitespace between them): (line, value or None, reason, raw).

    After a value that is not JSON, reading resumes at the next line starting with ``{`` or ``[``.
    """
    decoder = json.JSONDecoder()
    position, line, length = 0, first_line, len(text)
    while True:
        start = position
        while position < length and text[position] in ' \t\r\n\ufeff':
            position += 1
        line += text.count('\n', start, position)
        if position >= length:
            return
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            end = _next_value_start(text, position + 1)
            yield line, None, reasons.NOT_JSON, text[position:end]
        else:
            yield line, value, None, None
        line += text.count('\n', position, end)
        position = end


_VALUE_START = re.compile(r'\n[{\[]')


def _next_value_start(text, position):
    match = _VALUE_START.search(text, position - 1)
    return match.start() + 1 if match else len(text)


def _document_values(stream):
    """JSON values of a whole file (pretty-printed documents, one after another), read in blocks.

    Yields (line, value, reason, raw text). A value longer than MAX_RECORD_BYTES or not JSON is
    reported and skipped up to the next line starting with ``{`` or ``[``.
    """
    import codecs
    text_decoder = codecs.getincrementaldecoder('utf-8')(errors='surrogateescape')
    json_decoder = json.JSONDecoder()
    buffer, position, line, eof = '', 0, 1, False

    def fill():
        nonlocal buffer, position, eof
        block = stream.read(BLOCK_BYTES)
        eof = not block
        buffer = buffer[position:] + text_decoder.decode(block, final=eof)
        position = 0

    stream.seek(0)
    fill()
    if buffer.startswith('\ufeff'):
        position = 1
    while True:
        if not eof and len(buffer) - position < MAX_RECORD_BYTES:
            fill()
            continue
        start = position
        while position < len(buffer) and buffer[position] in ' \t\r\n':
            position += 1
        line += buffer.count('\n', start, position)
        if position >= len(buffer):
            if eof:
                return
            fill()
            continue
        try:
            value, end = json_decoder.raw_decode(buffer, position)
        except ValueError:
            value, end = None, None
        if end is not None:
            yield line, value, None, buffer[position:end]
            line += buffer.count('\n', position, end)
            position = end
            continue
        # Not JSON, or longer than MAX_RECORD_BYTES: report it and skip to the next value start.
        found = _VALUE_START.search(buffer, position)
        if found:
            yield line, None, reasons.NOT_JSON, buffer[position:found.start()]
            line += buffer.count('\n', position, found.start() + 1)
            position = found.start() + 1
            continue
        yield line, None, (reasons.NOT_JSON if eof else reasons.TOO_LONG), buffer[position:position + 4096]
        while not eof:
            line += buffer.count('\n', position, len(buffer) - 1)
            position = len(buffer) - 1  # keep the last character: it may be the newline before a value
            fill()
            found = _VALUE_START.search(buffer, position)
            if found:
                break
        if not found:
            return
        line += buffer.count('\n', position, found.start() + 1)
        position = found.start() + 1


_SURROGATE = re.compile('[\udc80-\udcff]')


def _document_reader(default):
    def read(lines, stream=None, table=None, needles=None):
        for line, value, reason, raw in _document_values(stream):
            lines.lines_seen += 1
            position = {'line': line}
            if reason is None and _SURROGATE.search(raw):
                reason = reasons.INVALID_UTF8
            raw_bytes = raw.encode('utf-8', 'surrogateescape')
            if reason:
                lines.lines_produced += 1
                yield Undecodable(position, reason, raw_bytes)
                continue
            if needles is not None and not needles.search(raw_bytes):
                continue
            lines.lines_produced += 1
            yield from value_rows(value, table, default, position)
    read.__name__ = 'read_document_' + default
    read.__doc__ = 'Whole-file JSON (pretty-printed objects or arrays), shape %r unless shown.' % default
    return read


def read_eventhub_avro(lines, stream=None, table=None, needles=None):
    from transforms.read.formats.eventhub_capture import read_capture
    return read_capture(lines, stream, table, needles)


def read_csv(lines, stream=None, table=None, needles=None):
    from transforms.read.formats.csv_export import read_csv_export
    return read_csv_export(lines, stream, table, needles)


def _gzip_reader(input_format):
    def read(lines, stream=None, table=None, needles=None):
        import gzip
        stream.seek(0)
        inner = gzip.GzipFile(fileobj=stream, mode='rb')
        head = inner.read(4096)
        inner.seek(0)
        fmt = choose_format(input_format, '', head)
        if fmt.startswith(GZIP_PREFIX):
            yield Undecodable({'offset': 0}, 'gzip inside gzip', b'')
            return
        inner_lines = LineReader(inner, 0, lambda offset: True, needles)
        try:
            yield from FORMAT_READERS[fmt](inner_lines, stream=inner, table=table, needles=needles)
        except (OSError, EOFError) as error:  # corrupt or truncated gzip data
            yield Undecodable({'line': inner_lines.lines_seen + 1}, 'bad gzip data: %s' % error, b'')
        lines.lines_seen += inner_lines.lines_seen
        lines.lines_produced += inner_lines.lines_produced
    read.__name__ = 'read_gzip_' + input_format
    return read


GZIP_PREFIX = 'gzip+'
JSON_FORMATS = {'jsonl': ROW, 'records': ENVELOPE, 'activity_log': ACTIVITY, 'defender_streaming': DEFENDER}
DOCUMENT_SUFFIX = '+document'

FORMAT_READERS = {
    'jsonl': read_json_lines,
    'records': read_records,
    'activity_log': read_activity_log,
    'defender_streaming': read_defender_streaming,
    'eventhub_avro': read_eventhub_avro,
    'csv': read_csv,
}
FORMAT_READERS.update({name + DOCUMENT_SUFFIX: _document_reader(shape) for name, shape in JSON_FORMATS.items()})
FORMAT_READERS.update({GZIP_PREFIX + name: _gzip_reader(name)
                       for name in ['auto', 'jsonl', 'records', 'activity_log', 'defender_streaming', 'eventhub_avro', 'csv']})
LINE_FORMATS = frozenset(JSON_FORMATS)

AVRO_MAGIC = b'Obj\x01'
GZIP_MAGIC = b'\x1f\x8b'
_RECORDS_KEY = re.compile(rb'^\s*\{\s*"records"\s*:')
_DEFENDER_CATEGORY = re.compile(rb'"category"\s*:\s*"AdvancedHunting-')
_OPERATION_NAME = re.compile(rb'"operationName"\s*:')
_TIME = re.compile(rb'"time"\s*:')
_TIME_GENERATED = re.compile(rb'"TimeGenerated"\s*:')


def _first_line(head):
    end = head.find(b'\n')
    return head if end < 0 else head[:end]


def detect_format(file_name, head):
    """The export format of a file from its name and its first bytes (decompressed).

    ``Obj\\x01`` -> eventhub_avro; a first line that is not JSON but a CSV header -> csv; JSON:
    ``{"records": ...`` -> records, a Defender ``category`` ``AdvancedHunting-...`` ->
    defender_streaming, ``operationName`` and ``time`` (and no ``TimeGenerated``) -> activity_log,
    anything else -> jsonl. The name only helps when the bytes say nothing (``.avro``, ``.csv``).
    """
    if head.startswith(AVRO_MAGIC):
        return 'eventhub_avro'
    text = head[len(BOM):] if head.startswith(BOM) else head
    stripped = text.lstrip()
    if stripped[:1] in (b'{', b'['):
        if _RECORDS_KEY.match(stripped):
            return 'records'
        if _DEFENDER_CATEGORY.search(stripped):
            return 'defender_streaming'
        if _OPERATION_NAME.search(stripped) and _TIME.search(stripped) and not _TIME_GENERATED.search(stripped):
            return 'activity_log'
        return 'jsonl'
    if stripped and _looks_like_csv_header(_first_line(text)):
        return 'csv'
    lower = file_name.lower()
    for suffix in ('.gz', '.gzip'):
        if lower.endswith(suffix):
            lower = lower[:-len(suffix)]
    if lower.endswith('.avro'):
        return 'eventhub_avro'
    if lower.endswith('.csv'):
        return 'csv'
    return 'jsonl'


def _looks_like_csv_header(line):
    line = line.rstrip(b'\r')
    if b',' not in line:
        return False
    try:
        line.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


def _is_multiline_document(head):
    """Whether a JSON file's first value spans several lines (a pretty-printed document)."""
    text = head[len(BOM):] if head.startswith(BOM) else head
    stripped = text.lstrip()
    if stripped[:1] not in (b'{', b'['):
        return False
    newline = stripped.find(b'\n')
    if newline < 0:
        return False  # one long line, or a line longer than the head: JSON lines
    first = stripped[:newline].rstrip(b'\r').rstrip()
    try:
        json.loads(first.decode('utf-8'))
    except (ValueError, UnicodeDecodeError):
        # A value continued on the next line ends its first line with an opening bracket or a
        # separator; a broken JSON line does not make the file a document.
        return first[-1:] in (b'{', b'[', b',', b':')
    return False


def choose_format(input_format, file_name, head):
    """The reader (a key of FORMAT_READERS) of one file: detected, or forced by --input_format.

    Detected JSON formats are all read by the ``jsonl`` reader: it sniffs the shape of every
    object (`sniff_shape`), so a file mixing shapes is read right; a forced JSON format only
    makes its shape the one of the objects that show none. A JSON file whose first value spans
    several lines is read whole (``<format>+document``).
    """
    if head.startswith(GZIP_MAGIC):
        return GZIP_PREFIX + (input_format or 'auto')  # gzip without a .gz name: decompressed here
    if input_format in (None, 'auto'):
        fmt = detect_format(file_name, head)
        if fmt in JSON_FORMATS:
            fmt = 'jsonl'
    else:
        fmt = input_format
    if fmt in JSON_FORMATS and _is_multiline_document(head):
        return fmt + DOCUMENT_SUFFIX
    return fmt


class _Found(NamedTuple):
    begin: int
    finish: int

    def start(self):
        return self.begin

    def end(self):
        return self.finish


class LiteralNeedles:
    """A byte-literal search with the `search(data, pos)` interface of a compiled bytes regex.

    `folded` literals match ignoring ASCII case (as ``(?i:...)`` does on bytes), `exact` literals as
    they are. `confirm` maps an exact literal to a bytes regex that must also match where the
    literal starts (``-File`` must be followed by whitespace and ``script``): the literal is found
    with ``bytes.find`` and the regex only checks the few places found. Much faster than a regex
    search: each literal is found with ``bytes.find`` in the block (lower-cased once per block for
    the folded ones), and the next occurrence of every literal is remembered while the reader walks
    forward through the same block.
    """

    def __init__(self, folded=(), exact=(), confirm=None):
        self.folded = tuple(literal.lower() for literal in folded)
        self.exact = tuple(exact)
        self.confirm = dict(confirm or {})
        self._reset(None)

    def _reset(self, data):
        self._data = data
        self._lower = None
        self._next = {}

    def __getstate__(self):
        return {'folded': self.folded, 'exact': self.exact, 'confirm': self.confirm}

    def __setstate__(self, state):
        self.folded, self.exact, self.confirm = state['folded'], state['exact'], state['confirm']
        self._reset(None)

    def _find(self, haystack, literal, pos):
        found = haystack.find(literal, pos)
        pattern = self.confirm.get(literal)
        if pattern is not None:
            while found != -1 and pattern.match(haystack, found) is None:
                found = haystack.find(literal, found + 1)
        return found

    def search(self, data, pos=0):
        if data is not self._data:
            self._reset(data)
            if self.folded:
                self._lower = data.lower()
        best = None
        for folded, haystack, literals in ((False, data, self.exact), (True, self._lower, self.folded)):
            for literal in literals:
                cached = self._next.get((folded, literal))
                # A cached find from `start` still answers for `pos` >= start unless it lies before pos.
                if cached is not None and cached[0] <= pos and (cached[1] == -1 or cached[1] >= pos):
                    found = cached[1]
                else:
                    found = self._find(haystack, literal, pos)
                    self._next[(folded, literal)] = (pos, found)
                if found != -1 and (best is None or found < best[0]):
                    best = (found, found + len(literal))
        return _Found(*best) if best else None


# extract(@"\-File\s(script...)"): "-File", one RE2 whitespace ([\t\n\f\r ]), then "script", the
# whitespace raw (a CSV cell) or as a JSON escape (\t \n \f \r; \u00XX escapes are matched apart).
SCRIPT_FILE_ARGUMENT = re.compile(rb'-File(?:[ \t\n\x0c\r]|\\[tnfr])script')


def relevance_needles(table, process_names=(), fold_process_names=True):
    """A byte-literal search (`LiteralNeedles`) that every record relevant to the rule for `table`
    matches, or None when no literal search can be exact (every record is then read).

    Exact by construction: it matches the literal that the rule's filters require (ignoring case
    where they do), or any JSON ``\\u00`` escape (which could spell that literal in another way).
    `fold_process_names`: whether DeviceFileEvents' process names are compared ignoring case
    (strict) or with ``==`` (the rule).
    The same holds for every format: the literal is in the bytes of the record whatever its
    shape (CSV only doubles quotes; the Activity Log's operationName, a Defender record's
    properties and an Avro event's Body carry it as is), so the search is applied to a JSON line
    (an envelope passes if any of its records could match), a CSV record's cells, a JSON
    document, or an Avro event's Body.
    """
    from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
    # Only an escape of a character below U+0100 can spell a character of these ASCII literals
    # (nothing outside Latin-1 lower-cases or compares equal to them in the rule's filters).
    escape = b'\\u00'
    if table == AZURE_ACTIVITY:
        return LiteralNeedles(folded=[b'runcommand'], exact=[escape])
    if table == DEVICE_FILE_EVENTS:
        names = list(process_names) or ['RunCommandExtension.exe']
        if any(not name.isascii() or '/' in name for name in names):
            return None  # no byte literal is exact for a name that JSON may spell with escapes
        if not fold_process_names:
            return LiteralNeedles(exact=[name.encode('ascii') for name in names] + [escape])
        if any('k' in name.lower() for name in names):
            return None  # KELVIN SIGN lower-cases to "k": no byte literal is exact for such a name
        return LiteralNeedles(folded=[name.encode('ascii') for name in names], exact=[escape])
    if table == DEVICE_EVENTS:
        return LiteralNeedles(exact=[b'-File', escape], confirm={b'-File': SCRIPT_FILE_ARGUMENT})
    raise ValueError(table)
