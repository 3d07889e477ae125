"""Lines of an export file, or of one byte range of it, for the readers of line-based formats.

A line longer than ``MAX_RECORD_BYTES`` is reported (as None) and not kept in memory; with a
prefilter (`transforms.read.prefilter`) only the lines that could matter are split out of a block.
"""

import re

MAX_RECORD_BYTES = 1 << 20
BLOCK_BYTES = 256 << 10  # small enough for a block and its lower-cased copy to stay in the CPU cache
BOM = b'\xef\xbb\xbf'
# Characters that stand for bytes that were not UTF-8, in text decoded with errors='surrogateescape'.
UNDECODABLE_BYTES = re.compile('[\udc80-\udcff]')


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

    def _next_line_start(self, offset):
        """The offset of the first line starting at or after `offset` (after the newline at
        ``offset - 1`` or later), or None when the range holds none. Read in blocks, never past the
        range's end: a split starting inside a long line does not read (nor hold) the whole line."""
        stream = self._stream
        position = offset - 1
        stream.seek(position)
        while True:
            size = self._block_bytes
            if self._stop is not None:
                size = min(size, self._stop - 1 - position)  # a newline at stop - 1 starts the next range
                if size <= 0:
                    return None
            block = stream.read(size)
            if not block:
                return None
            newline = block.find(b'\n')
            if newline >= 0:
                start = position + newline + 1
                stream.seek(start)
                return start
            position += len(block)

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
            offset = self._next_line_start(offset)
            if offset is None:
                return
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
