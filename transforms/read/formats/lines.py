"""Lines of an export file, or of one byte range of it, for the readers of line-based formats.

A line longer than ``MAX_RECORD_BYTES`` is reported (as None) and not kept in memory; with a
prefilter (`transforms.read.prefilter`) only the lines that could matter are split out of a block.
"""

import re
from typing import NamedTuple

MAX_RECORD_BYTES = 1 << 20
BLOCK_BYTES = 256 << 10  # small enough for a block and its lower-cased copy to stay in the CPU cache
BOM = b'\xef\xbb\xbf'
# Characters that stand for bytes that were not UTF-8, in text decoded with errors='surrogateescape'.
UNDECODABLE_BYTES = re.compile('[\udc80-\udcff]')


class ScannedLines(NamedTuple):
    """The candidate lines of a block the block scanner took (`transforms.read.blockscan`), produced
    together once the block's last line is claimed: every line of the block is then the range's.

    `spans` holds the (index in the block, start, end) of each candidate line of `block` (bytes
    from the file's `offset`; line `index` has the range's line number ``first_number + index``),
    `plain` one byte per candidate, 1 when the scanner vouches for it as it vouches for the lines
    it validated (a plain row of at most MAX_RECORD_BYTES): a reader may decode such a line without
    its own checks. Each candidate is a line as `LineReader` produces them one by one otherwise.
    """
    offset: int
    first_number: int
    block: bytes
    spans: list
    plain: bytes

    def lines(self):
        """(offset, line number, line bytes or None for a line over MAX_RECORD_BYTES, vouched) of each."""
        offset, first_number, block = self.offset, self.first_number, self.block
        for (index, start, end), vouched in zip(self.spans, self.plain):
            line = block[start:end]
            yield offset + start, first_number + index, line if len(line) <= MAX_RECORD_BYTES else None, vouched


class LineInBlock:
    """The number of a line of a block, counted only when asked (`LineReader.absolute_line`): the
    lines given to the native validator with a block's candidate lines need no numbers, so the
    newlines before each candidate are counted only if its record turns out to be a dead letter."""

    __slots__ = ('_before', '_block', '_start')

    def __init__(self, before, block, start):
        self._before = before  # the number of the block's first line
        self._block = block
        self._start = start

    def __int__(self):
        return self._before + self._block.count(b'\n', 0, self._start)

    def __repr__(self):
        return 'LineInBlock(%d)' % int(self)


class LineReader:
    """Lines of a byte stream from `start` (after the first newline at or after it, unless 0)
    whose first byte lies before the end of the range, with their offsets and 1-based numbers.

    `claim(offset)` is asked before each line is produced and ends the reading when it says no
    (the range tracker of a split); lines starting at or after `stop` (the range's end, when
    given) are left to the next range and not read. With `needles` (a bytes regex,
    `LiteralNeedles`, or `transforms.read.blockscan.NativeNeedles`, which finds a block's lines in
    one native call), only the lines matching them are produced; the others are skipped without
    being split out of the block, and are the range's once the block's last line is claimed (a
    dynamic split may end the range after its last candidate). `lines_seen` counts every line of
    the range passed over.

    Line numbers are counted from the range's first line (1); `absolute_line(n)` turns one into
    the line number in the file, counting the newlines before the range once, only when asked
    (for a dead letter), so that reading a split never re-reads the file before it. The candidate
    lines of a block whose other lines the msgspec `bulk` took are numbered lazily (`LineInBlock`),
    for the same reason.

    With `bulk` (and `needles`), the lines the needles skip are not skipped unread:
    ``bulk(text)`` gets them a block at a time (whole lines, each ending with a newline)
    and validates, counts them (its result's first item is their number) and counts their rows
    (`transforms.read.bulk`), or ``bulk.scan_block(block)`` finds the candidates and does the same
    for the others in one call (`transforms.read.blockscan`); they count as produced, and the
    result is appended to `bulk_counts` once the block's lines are claimed. When it returns None,
    every line of that block is produced instead, for the per-line reader to decide. `stop_now()`
    (the range tracker's current end) says which lines of a block are still the range's when a
    dynamic split cuts it inside the block.

    The candidates of a block that ``bulk.scan_block`` took are produced as one `ScannedLines`, after
    the block's last line is claimed (one claim for the block instead of one per candidate); when
    that claim fails (a dynamic split inside the block), the lines still the range's are produced
    one by one, as for a block `bulk` hands back.

    With `rewind` (a stream that seeks back cheaply: an uncompressed file) and a ``bulk.scan_block``,
    every block starts at a line start: the scanner reads the block's complete lines in place, and
    the stream goes back to the block's unfinished last line, the start of the next block, instead
    of that line being carried and the next block copied behind it.
    """

    def __init__(self, stream, start, claim, needles=None, block_bytes=BLOCK_BYTES, stop=None, bulk=None,
                 stop_now=None, rewind=False):
        self._stream = stream
        self._start = start
        self._claim = claim
        self._needles = needles
        self._block_bytes = block_bytes
        self._stop = stop
        self._bulk = bulk if needles is not None else None
        self._stop_now = stop_now
        # Blocks read again from their unfinished last line instead of carried into the next block:
        # the scanner then reads each block in place (no copy of it behind the carried line).
        self._rewind = rewind and getattr(self._bulk, 'scan_block', None) is not None
        self._first_offset = start
        self._base = None
        self._block_lines = 0
        self.lines_seen = 0
        self.lines_produced = 0
        self.bulk_counts = []

    def absolute_line(self, number):
        """The line number in the whole file of the range's line `number`."""
        if self._base is None:
            self._base = self._line_number_at(self._first_offset) - 1
        return self._base + int(number)

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

    def _all_lines(self, complete):
        # (index of line in block, start, end) of every line of `complete`.
        lines = complete.split(b'\n')[:-1]
        self._block_lines = len(lines)
        start = 0
        for index, line in enumerate(lines):
            yield index, start, start + len(line)
            start += len(line) + 1

    def _bulk_block(self, complete, size=None):
        """The lines of `complete` for the per-line reader, after the others were given to `bulk`:
        a list of (index, start, end), the number of lines `bulk` took (0: none), its result, and
        which of the listed lines `bulk` vouches for (one byte each; None when it says nothing).
        `bulk` counts the lines it is given (its result's first item), so that the block's
        newlines are not counted here too. A `bulk` with ``scan_block`` (`transforms.read.blockscan`)
        finds the candidate lines and validates the others in one call, and vouches for the
        candidates it can. With `size`, only ``complete[:size]`` is read (the native scanner reads it in
        place); the lines of a block the scanner hands back are then those of ``complete[:size]``."""
        scan_block = getattr(self._bulk, 'scan_block', None)
        if scan_block is not None:
            scanned = scan_block(complete) if size is None else scan_block(complete, size)
            if scanned is None or len(scanned[0]) == scanned[1]:
                return list(self._all_lines(complete if size is None else complete[:size])), 0, None, None
            candidates, self._block_lines, result, plain = scanned
            return candidates, result[0], result, plain
        matching = list(self._matching_lines(complete, count=False))
        if matching:
            parts, previous = [], 0
            for _, line_start, line_end in matching:
                parts.append(complete[previous:line_start])
                previous = line_end + 1
            parts.append(complete[previous:])
            text = b''.join(parts)
        else:
            text = complete
        if not text:
            return list(self._all_lines(complete)), 0, None, None  # every line is a candidate
        result = self._bulk(text) if len(text) <= MAX_RECORD_BYTES else None
        if result is not None:
            taken = result[0]
            self._block_lines = len(matching) + taken
            return matching, taken, result, None  # their indexes are None: numbered lazily
        return list(self._all_lines(complete)), 0, None, None

    def _claim_failed_in_bulk_block(self, complete, buffer_offset, produced):
        """The lines of `complete` that a dynamic split left to this range after `bulk` took some of
        them: every line before the range's new end that was not produced, for the per-line reader
        (`bulk`'s counts of the block are then wrong, so the block is read line by line)."""
        stop = self._stop_now() if self._stop_now is not None else buffer_offset
        return [(index, line_start, line_end) for index, line_start, line_end in self._all_lines(complete)
                if buffer_offset + line_start < stop and line_start not in produced]

    def _lines_before_stop(self, complete, buffer_offset, lines):
        """How many lines of `complete` (a block starting at `buffer_offset`) start before the
        range's current end, once a claim in it failed; `lines` without `stop_now`."""
        if self._stop_now is None:
            return lines
        length = self._stop_now() - buffer_offset
        return 1 + complete.count(b'\n', 0, length - 1) if length > 0 else 0

    def _matching_lines(self, complete, count=True):
        # (index of line in block, start, end) of the lines of `complete` matching the needles.
        # With count, the block's lines are counted (in _block_lines); else nothing is counted, the
        # indexes are None and the caller counts the lines.
        if self._needles is None:
            yield from self._all_lines(complete)
            return
        native = getattr(self._needles, 'lines', None)
        if native is not None and count:
            # `transforms.read.blockscan.NativeNeedles`: every candidate and the line count in one call.
            candidates, self._block_lines = native(complete)
            yield from candidates
            return
        search = self._needles.search
        position = index = 0
        while True:
            match = search(complete, position)
            if match is None:
                if count:
                    # The block's lines, counted in the same single pass as the line indexes.
                    self._block_lines = index + complete.count(b'\n', position)
                return
            line_start = complete.rfind(b'\n', 0, match.start()) + 1
            # The line holding the match's start (a match spanning a raw newline is not a line's).
            line_end = complete.find(b'\n', match.start())
            if count:
                index += complete.count(b'\n', position, line_start)
                yield index, line_start, line_end
                index += 1
            else:
                yield None, line_start, line_end
            position = line_end + 1

    def _after_failed_claim(self, complete, buffer_offset, first_number, produced):
        # A dynamic split inside a block whose other lines went to `bulk`: bulk's result for the
        # block is dropped, and the lines still this range's are read one by one.
        lines = self._claim_failed_in_bulk_block(complete, buffer_offset, produced)
        self.lines_seen += len(produced) + len(lines)
        for index, line_start, line_end in lines:
            line = complete[line_start:line_end]
            self.lines_produced += 1
            yield (buffer_offset + line_start, first_number + index,
                   line if len(line) <= MAX_RECORD_BYTES else None)

    def __iter__(self):
        """Yields (offset, line_number, line bytes, or None for a line over MAX_RECORD_BYTES), and a
        `ScannedLines` for the candidates of each block the block scanner took."""
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
            block_end = block.rfind(b'\n')
            if block_end < 0:
                data = buffer + block
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
            # The complete lines, complete[:size]: with rewind the block itself, its unfinished last
            # line read again as the start of the next block; otherwise the line begun before, then
            # the block up to its last newline, in one copy (slicing `buffer + block` copied them
            # twice, each time into fresh pages).
            end = len(buffer) + block_end  # the last newline's offset from buffer_offset
            size = end + 1
            if not buffer and (block_end + 1 == len(block) or self._rewind):
                complete = block
                if size < len(block):  # the unfinished last line starts the next block
                    stream.seek(buffer_offset + size)
                buffer = b''
            else:
                complete = b''.join((buffer, memoryview(block)[:block_end + 1]))
                buffer = block[block_end + 1:]
            last_block = False
            if self._stop is not None and buffer_offset + size > self._stop:
                # Keep the lines that start before the range's end; the rest is the next range's.
                size = complete.find(b'\n', max(0, self._stop - buffer_offset - 1)) + 1
                last_block = True
            if size < len(complete) and not self._rewind:
                complete = complete[:size]
            plain = None
            if self._bulk is None:
                spans, taken = self._matching_lines(complete), 0
            else:
                spans, taken, result, plain = self._bulk_block(complete, size if size < len(complete) else None)
            if plain is None and size < len(complete):
                complete = complete[:size]  # the per-line reader's lines: the complete ones
            if plain is not None:
                # A block the scanner took: its lines are this range's once its last line is claimed.
                last_start = complete.rfind(b'\n', 0, size - 1) + 1
                if not self._claim(buffer_offset + last_start):
                    yield from self._after_failed_claim(complete[:size], buffer_offset, first_line + lines_before,
                                                        set())
                    return
                if spans:
                    yield ScannedLines(buffer_offset, first_line + lines_before, complete, spans, plain)
                self.lines_produced += len(spans) + taken
                self.bulk_counts.append(result)
                spans = ()
            produced = set() if taken and plain is None else None
            claimed = None  # the start of the block's last line claimed
            for index, line_start, line_end in spans:
                if not self._claim(buffer_offset + line_start):
                    if not taken:
                        self.lines_seen += self._lines_before_stop(complete, buffer_offset, index)
                        return
                    yield from self._after_failed_claim(complete, buffer_offset, first_line + lines_before, produced)
                    return
                line = complete[line_start:line_end]
                self.lines_produced += 1
                claimed = line_start
                if taken:
                    produced.add(line_start)
                number = (first_line + lines_before + index if index is not None
                          else LineInBlock(first_line + lines_before, complete, line_start))
                yield (buffer_offset + line_start, number, line if len(line) <= MAX_RECORD_BYTES else None)
            if taken and plain is None:
                # The lines `bulk` took are this range's only once the block's last line is claimed.
                last_start = complete.rfind(b'\n', 0, len(complete) - 1) + 1
                if last_start not in produced and not self._claim(buffer_offset + last_start):
                    yield from self._after_failed_claim(complete, buffer_offset, first_line + lines_before, produced)
                    return
                self.lines_produced += taken
                self.bulk_counts.append(result)
            elif self._needles is not None and self._stop_now is not None and plain is None:
                # Likewise the lines the needles skipped: a dynamic split after the block's last
                # candidate leaves the lines after it to the next range, which reads them again.
                last_start = complete.rfind(b'\n', 0, len(complete) - 1) + 1
                if last_start != claimed and not self._claim(buffer_offset + last_start):
                    self.lines_seen += self._lines_before_stop(complete, buffer_offset, self._block_lines)
                    return
            total = self._block_lines
            self.lines_seen += total
            lines_before += total
            if last_block:
                return
            buffer_offset += end + 1
