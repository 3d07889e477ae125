"""The JSON formats: JSON lines (one record per line) and whole-file JSON documents.

Each JSON object is decoded by `transforms.read.formats.records`, whatever the format says its
records are: a reader's shape is only the one of the objects that show none.
"""

import codecs
import re

from transforms.read import dead_letter as reasons
from transforms.read.bounded_json import DECODER, FAST_DECODE, TooDeep
from transforms.read.formats.lines import BLOCK_BYTES, BOM, MAX_RECORD_BYTES, UNDECODABLE_BYTES, ScannedLines
from transforms.read.formats.records import (ACTIVITY, DEFENDER, ENVELOPE, ROW, Decoded, TypedRows, Undecodable,
                                             decode_object, record_rows, value_rows)
from transforms.read.ingest import native_typer


def _json_line_reader(default):
    def read(lines, stream=None, table=None, needles=None):
        # The candidates of a block the block scanner took come as one `ScannedLines`: a line it
        # vouched for is a plain row whose text `decode_object` would hand to msgspec, decoded from
        # its bytes at once, without the checks; such a line of a known table is typed in one
        # compiled call where it can be, and the block's typed rows leave together (`TypedRows`).
        fast = FAST_DECODE if default == ROW else None
        typer = native_typer(table) if fast is not None else None
        for item in lines:
            if item.__class__ is ScannedLines:
                rows = []
                for offset, number, line, vouched in item.lines():
                    if vouched and fast is not None:
                        row = typer(line) if typer is not None else None
                        if row is not None:
                            rows.append(row)
                            continue
                        try:
                            value = fast(line)
                        except ValueError:  # msgspec refuses it as it would its text: the checks below decide
                            pass
                        else:
                            yield Decoded({'line': number, 'offset': offset}, value)
                            continue
                    yield from _line_records(default, table, offset, number, line)
                if rows:
                    yield TypedRows(rows)
            else:
                yield from _line_records(default, table, *item)
    read.__name__ = 'read_' + default
    read.__doc__ = 'JSON lines, one object per line; objects of shape %r unless they show another.' % default
    return read


def _line_records(default, table, offset, number, line):
    """The records of one JSON line (None: longer than MAX_RECORD_BYTES): Decoded rows or Undecodable."""
    position = {'line': number, 'offset': offset}
    if line is None:
        yield Undecodable(position, reasons.TOO_LONG, b'')
        return
    if offset == 0 and line.startswith(BOM):
        line = line[len(BOM):]
    if line.endswith(b'\r'):
        line = line[:-1]
    if not line.strip():
        return
    value, reason = decode_object(line)
    if reason:
        yield Undecodable(position, reason, line)
    elif (default == ROW and 'TimeGenerated' in value and 'properties' not in value
          and 'Type' not in value and '$table' not in value):
        yield Decoded(position, value)  # a plain row: what record_rows would decide, sooner
    else:
        yield from record_rows(value, table, default, position)


read_json_lines = _json_line_reader(ROW)
read_records = _json_line_reader(ENVELOPE)
read_activity_log = _json_line_reader(ACTIVITY)
read_defender_streaming = _json_line_reader(DEFENDER)


def json_values(text, first_line=1):
    """Consecutive JSON values of a text (whitespace between them): (line, value or None, reason, raw).

    After a value that is not JSON (or nested too deep), reading resumes at the next line starting
    with ``{`` or ``[``.
    """
    decoder = DECODER
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
        except ValueError as error:
            end = _next_value_start(text, position + 1)
            yield line, None, _reason(error), text[position:end]
        else:
            yield line, value, None, None
        line += text.count('\n', position, end)
        position = end


_VALUE_START = re.compile(r'\n[{\[]')


def _reason(error):
    return reasons.TOO_DEEP if isinstance(error, TooDeep) else reasons.NOT_JSON


def _next_value_start(text, position):
    match = _VALUE_START.search(text, position - 1)
    return match.start() + 1 if match else len(text)


def _document_values(stream):
    """JSON values of a whole file (pretty-printed documents, one after another), read in blocks.

    Yields (line, value, reason, raw text). A value longer than MAX_RECORD_BYTES or not JSON is
    reported and skipped up to the next line starting with ``{`` or ``[``.
    """
    text_decoder = codecs.getincrementaldecoder('utf-8')(errors='surrogateescape')
    json_decoder = DECODER
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
        reason = reasons.NOT_JSON
        try:
            value, end = json_decoder.raw_decode(buffer, position)
        except TooDeep:
            value, end, reason = None, None, reasons.TOO_DEEP
        except ValueError:
            value, end = None, None
        if end is not None:
            yield line, value, None, buffer[position:end]
            line += buffer.count('\n', position, end)
            position = end
            continue
        # Not JSON, nested too deep, or longer than MAX_RECORD_BYTES: report it and skip to the
        # next value start.
        found = _VALUE_START.search(buffer, position)
        if found:
            yield line, None, reason, buffer[position:found.start()]
            line += buffer.count('\n', position, found.start() + 1)
            position = found.start() + 1
            continue
        yield line, None, (reason if eof or reason == reasons.TOO_DEEP else reasons.TOO_LONG), buffer[position:position + 4096]
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


def document_reader(default):
    def read(lines, stream=None, table=None, needles=None):
        for line, value, reason, raw in _document_values(stream):
            lines.lines_seen += 1
            position = {'line': line}
            if reason is None and UNDECODABLE_BYTES.search(raw):
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
