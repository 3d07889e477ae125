"""Event Hubs Capture Avro files -> rows of the JSON shapes their event bodies hold.

Capture writes ``{Namespace}/{EventHub}/{PartitionId}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro``: an Avro
object container file of ``EventData`` records (``SequenceNumber``, ``Offset``, ``EnqueuedTimeUtc``,
``SystemProperties``, ``Properties``, ``Body``). Each Body is the message as the exporter sent it:
a ``{"records": [...]}`` envelope (Log Analytics data export, diagnostic settings, Defender
streaming API), or a single record, decoded by `transforms.read.formats.records` like the text files.

The file is streamed block by block: the container framing (header, then per block: record
count, byte size, data, 16-byte sync marker) is read here, and each block's records are decoded
with ``fastavro.schemaless_reader`` against the writer schema of the header. A truncated or corrupt
block is one dead letter (with its byte offset); reading resumes at the next sync marker, so the
rest of the file is still read.
"""

import io
import json
import zlib

import fastavro

from transforms.read import dead_letter as reasons
from transforms.read.formats.json_lines import json_values
from transforms.read.formats.lines import BOM
from transforms.read.formats.records import ROW, Undecodable, value_rows

MAGIC = b'Obj\x01'
SYNC_BYTES = 16
MAX_BLOCK_BYTES = 64 << 20
READ_BYTES = 1 << 20

BAD_HEADER = 'not an Avro container file (bad header)'
TRUNCATED_BLOCK = 'truncated Avro block'
CORRUPT_BLOCK = 'corrupt Avro block'
BAD_SYNC = 'corrupt Avro block (sync marker mismatch): skipped to the next sync marker'
UNSUPPORTED_CODEC = 'unsupported Avro codec'
BAD_RECORD = 'Avro record not decodable'
NO_BODY = 'event without a Body'


class _Input:
    """A forward byte reader over a stream, with file offsets, varints and marker search."""

    def __init__(self, stream):
        self._stream = stream
        self._buffer = b''
        self._position = 0
        self._base = 0  # file offset of _buffer[0]
        self.eof = False

    @property
    def offset(self):
        return self._base + self._position

    def _fill(self, size):
        while len(self._buffer) - self._position < size and not self.eof:
            chunk = self._stream.read(max(READ_BYTES, size - (len(self._buffer) - self._position)))
            if not chunk:
                self.eof = True
                break
            self._base += self._position
            self._buffer = self._buffer[self._position:] + chunk
            self._position = 0

    def read(self, size):
        self._fill(size)
        data = self._buffer[self._position:self._position + size]
        self._position += len(data)
        return data

    def at_end(self):
        self._fill(1)
        return self._position >= len(self._buffer)

    def read_long(self):
        """A zig-zag varint long; None at the end of the stream; ValueError when malformed."""
        shift = result = 0
        for _ in range(10):
            byte = self.read(1)
            if not byte:
                if shift == 0:
                    return None
                raise EOFError
            value = byte[0]
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise ValueError('varint longer than 10 bytes')

    def skip_past(self, marker):
        """Moves just after the next occurrence of `marker`; False at the end of the stream."""
        while True:
            found = self._buffer.find(marker, self._position)
            if found >= 0:
                self._position = found + len(marker)
                return True
            if self.eof:
                self._position = len(self._buffer)
                return False
            keep = max(self._position, len(self._buffer) - len(marker) + 1)
            self._position = keep
            self._fill(len(self._buffer) - keep + READ_BYTES)
            if self._position >= len(self._buffer) and self.eof:
                return False


def _read_bytes(source):
    size = source.read_long()
    if size is None or size < 0 or size > MAX_BLOCK_BYTES:
        raise ValueError('bad length')
    data = source.read(size)
    if len(data) < size:
        raise EOFError
    return data


def read_header(source):
    """(metadata dict of bytes, sync marker) of an Avro container file; ValueError if malformed."""
    if source.read(4) != MAGIC:
        raise ValueError(BAD_HEADER)
    metadata = {}
    while True:
        count = source.read_long()
        if count is None:
            raise EOFError
        if count == 0:
            break
        if count < 0:
            count = -count
            source.read_long()  # byte size of the map block
        for _ in range(count):
            key = _read_bytes(source).decode('utf-8')
            metadata[key] = _read_bytes(source)
    sync = source.read(SYNC_BYTES)
    if len(sync) < SYNC_BYTES:
        raise EOFError
    return metadata, sync


def _decompressor(codec):
    if codec in ('null', ''):
        return lambda data: data
    if codec == 'deflate':
        return lambda data: zlib.decompress(data, -15)
    if codec == 'bzip2':
        import bz2
        return bz2.decompress
    if codec == 'xz':
        import lzma
        return lzma.decompress
    if codec == 'snappy':
        try:
            import cramjam

            return lambda data: bytes(cramjam.snappy.decompress_raw(data[:-4]))
        except ImportError:
            try:
                import snappy

                return lambda data: snappy.decompress(data[:-4])
            except ImportError:
                return None
    if codec == 'zstandard':
        try:
            import zstandard

            return lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except ImportError:
            return None
    return None


def _body_items(body, table, position, needles, lines):
    """Decoded/Undecodable items of one event Body."""
    if body is None:
        lines.lines_seen += 1
        lines.lines_produced += 1
        yield Undecodable(position, NO_BODY, b'')
        return
    body = bytes(body)
    lines.lines_seen += 1
    if needles is not None and not needles.search(body):
        return
    lines.lines_produced += 1
    if body.startswith(BOM):
        body = body[len(BOM):]
    try:
        text = body.decode('utf-8')
    except UnicodeDecodeError:
        yield Undecodable(position, reasons.INVALID_UTF8, body)
        return
    for line, value, reason, raw in json_values(text):
        value_position = position if line == 1 else dict(position, body_line=line)
        if reason:
            yield Undecodable(value_position, reason, raw.encode('utf-8'))
            continue
        yield from value_rows(value, table, ROW, value_position)


def read_capture(lines, stream, table, needles=None):
    """Rows of an Event Hubs Capture Avro file, block by block. `lines` only receives the counts."""
    stream.seek(0)
    source = _Input(stream)
    try:
        metadata, sync = read_header(source)
        schema = fastavro.parse_schema(json.loads(metadata['avro.schema'].decode('utf-8')))
        codec = metadata.get('avro.codec', b'null').decode('utf-8')
    except Exception as error:  # pylint: disable=broad-except
        yield Undecodable({'offset': 0}, BAD_HEADER, repr(error).encode('utf-8'))
        return
    decompress = _decompressor(codec)
    while not source.at_end():
        block_offset = source.offset
        position = {'block_offset': block_offset}
        try:
            count = source.read_long()
            size = source.read_long()
            if count is None or size is None:
                raise EOFError
            if count < 0 or size < 0 or size > MAX_BLOCK_BYTES:
                raise ValueError('bad block count or size')
            data = source.read(size)
            if len(data) < size:
                raise EOFError
            marker = source.read(SYNC_BYTES)
            if len(marker) < SYNC_BYTES:
                raise EOFError
        except EOFError:
            yield Undecodable(position, TRUNCATED_BLOCK, b'')
            return
        except ValueError:
            yield Undecodable(position, CORRUPT_BLOCK, b'')
            if not source.skip_past(sync):
                return
            continue
        if marker != sync:
            yield Undecodable(position, BAD_SYNC, b'')
            # The block's data may hold a sync marker of its own: resume after the next one.
            source = _resume_after(source, stream, block_offset, sync)
            if source is None:
                return
            continue
        if decompress is None:
            yield Undecodable(position, '%s: %s' % (UNSUPPORTED_CODEC, codec), b'')
            continue
        try:
            block = io.BytesIO(decompress(data))
        except Exception:  # pylint: disable=broad-except
            yield Undecodable(position, CORRUPT_BLOCK, b'')
            continue
        for index in range(count):
            record_position = dict(position, record=index)
            try:
                event = fastavro.schemaless_reader(block, schema, None)
            except Exception:  # pylint: disable=broad-except
                yield Undecodable(record_position, BAD_RECORD + ' (the rest of the block is lost)', b'')
                break
            if isinstance(event, dict) and 'SequenceNumber' in event:
                record_position['sequence_number'] = event['SequenceNumber']
            body = event.get('Body') if isinstance(event, dict) else None
            yield from _body_items(body, table, record_position, needles, lines)


def _resume_after(source, stream, block_offset, sync):
    """A reader positioned after the first sync marker following `block_offset`, or None."""
    stream.seek(block_offset + 1)
    fresh = _Input(stream)
    fresh._base = block_offset + 1  # pylint: disable=protected-access
    if not fresh.skip_past(sync):
        return None
    return fresh
