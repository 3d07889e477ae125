"""Export formats of the three tables: detection per file and decoding into Log Analytics rows.

A format reader turns the bytes of one file (or of one byte range of it) into a stream of
``Decoded`` rows (column name -> JSON value, named as in the Log Analytics table) and
``Undecodable`` records (with position and reason). Typing of the values is not done here but in
`transforms.ingest`, the same way for every format.
"""

import json
import re
from typing import NamedTuple

from transforms import dead_letter as reasons

MAX_RECORD_BYTES = 1 << 20
BLOCK_BYTES = 4 << 20


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
    (the range tracker of a split). With a `needles` regex (bytes), only the lines matching it
    are produced; the others are skipped without being split out of the block. Line numbers
    stay exact either way; `lines_seen` counts every line passed over.
    """

    def __init__(self, stream, start, claim, needles=None, block_bytes=BLOCK_BYTES):
        self._stream = stream
        self._start = start
        self._claim = claim
        self._needles = needles
        self._block_bytes = block_bytes
        self.lines_seen = 0
        self.lines_produced = 0

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
            start = 0
            for index, line in enumerate(complete.split(b'\n')[:-1]):
                yield index, start, start + len(line)
                start += len(line) + 1
            return
        search = self._needles.search
        position = index = 0
        while True:
            match = search(complete, position)
            if match is None:
                return
            line_start = complete.rfind(b'\n', 0, match.start()) + 1
            line_end = complete.find(b'\n', match.end())
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
        first_line = None  # number of the first line of the range, computed when first needed
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
                if not self._claim(buffer_offset):
                    return
                if first_line is None:
                    first_line = self._line_number_at(offset)
                self.lines_seen += 1
                self.lines_produced += 1
                yield buffer_offset, first_line + lines_before, None
                lines_before += 1
                buffer, buffer_offset, dropping = b'', buffer_offset + len(data), True
                continue
            complete, buffer = data[:end + 1], data[end + 1:]
            total = complete.count(b'\n') if self._needles is not None else None
            seen = 0
            for index, line_start, line_end in self._matching_lines(complete):
                if not self._claim(buffer_offset + line_start):
                    self.lines_seen += index
                    return
                if first_line is None:
                    first_line = self._line_number_at(offset)
                line = complete[line_start:line_end]
                self.lines_produced += 1
                seen = index + 1
                yield (buffer_offset + line_start, first_line + lines_before + index,
                       line if len(line) <= MAX_RECORD_BYTES else None)
            total = seen if total is None else total
            self.lines_seen += total
            lines_before += total
            buffer_offset += end + 1


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


def read_json_lines(lines):
    """Log Analytics JSON lines: one row per line, the table's own column names."""
    for offset, number, line in lines:
        position = {'line': number, 'offset': offset}
        if line is None:
            yield Undecodable(position, reasons.TOO_LONG, b'')
            continue
        if line.endswith(b'\r'):
            line = line[:-1]
        if not line.strip():
            continue
        value, reason = _decode_object(line)
        if reason:
            yield Undecodable(position, reason, line)
        else:
            yield Decoded(position, value)


FORMAT_READERS = {'jsonl': read_json_lines}
LINE_FORMATS = frozenset(['jsonl'])


def detect_format(file_name, head):
    """The export format of a file from its name and its first bytes (decompressed)."""
    return 'jsonl'


def relevance_needles(table, process_names=()):
    """A bytes regex that every line relevant to the rule for `table` matches.

    Exact by construction: it matches the case-insensitive literal that the rule's filters
    require, or any JSON ``\\u`` escape (which could spell that literal in another way).
    """
    from transforms.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
    escape = rb'\\u'
    if table == AZURE_ACTIVITY:
        literals = [rb'(?i:runcommand)']
    elif table == DEVICE_FILE_EVENTS:
        names = [re.escape(name.encode('utf-8')) for name in process_names] or [rb'runcommandextension']
        literals = [rb'(?i:' + b'|'.join(names) + rb')']
    elif table == DEVICE_EVENTS:
        literals = [rb'-File']
    else:
        raise ValueError(table)
    return re.compile(b'|'.join(literals + [escape]))
