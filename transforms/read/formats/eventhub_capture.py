"""Event Hubs Capture Avro files -> rows of the JSON shapes their event bodies hold.

Capture writes ``{Namespace}/{EventHub}/{PartitionId}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro``: an Avro
object container file of ``EventData`` records (``SequenceNumber``, ``Offset``, ``EnqueuedTimeUtc``,
``SystemProperties``, ``Properties``, ``Body``). Each Body is the message as the exporter sent it:
a ``{"records": [...]}`` envelope (Log Analytics data export, diagnostic settings, Defender
streaming API), or a single record, decoded by `transforms.read.formats.records` like the text files.

The file is streamed block by block: the container framing (header, then per block: record
count, byte size, data, 16-byte sync marker) is read here, and each block's records are decoded
with ``fastavro.schemaless_reader``, resolving the writer schema of the header to a reader schema of
``SequenceNumber`` and ``Body`` only (the other fields are skipped, never built).

Whatever the file holds, the work and the memory stay bounded and no good block is lost:

* a block is read only when its framing is whole and ends with the file's sync marker; a block
  whose size, count or marker is corrupt is one dead letter, and reading resumes at the next
  position where a whole block ending with the sync marker starts: right after the damaged
  marker when the block's size was right (a zeroed marker loses only its own block), else after the
  next occurrence of the marker. A block cut by the end of the file is "truncated";
* a block is at most `MAX_BLOCK_BYTES` compressed and decompressed: inflating stops past that
  (a 1 MB deflate block of zeros does not become 1 GB in memory) and the block is a dead letter;
* an event Body longer than `MAX_BODY_BYTES` (Event Hubs' largest event is 1 MB) is a dead letter;
* a writer schema that is recursive, has no bytes ``Body``, or has arrays of items that take no
  bytes (which a count could repeat without end) is refused: "not an Event Hubs Capture file".
"""

import bz2
import io
import lzma
import struct
import zlib

import fastavro

from transforms.read import bounded_json
from transforms.read import dead_letter as reasons
from transforms.read.formats.json_lines import json_values
from transforms.read.formats.lines import BOM, MAX_RECORD_BYTES
from transforms.read.formats.records import ROW, Undecodable, value_rows

MAGIC = b'Obj\x01'
SYNC_BYTES = 16
MAX_BLOCK_BYTES = 64 << 20       # a block's data, compressed and decompressed
MAX_BODY_BYTES = MAX_RECORD_BYTES
READ_BYTES = 1 << 20

BAD_HEADER = 'not an Avro container file (bad header)'
BAD_SCHEMA = 'not an Event Hubs Capture file (its schema: %s)'
TRUNCATED_BLOCK = 'truncated Avro block'
CORRUPT_BLOCK = 'corrupt Avro block'
BAD_SYNC = 'corrupt Avro block (sync marker mismatch): skipped to the next sync marker'
BLOCK_TOO_LARGE = 'Avro block larger than 64 MiB once decompressed'
UNSUPPORTED_CODEC = 'unsupported Avro codec'
BAD_RECORD = 'Avro record not decodable'
TRAILING_BYTES = 'Avro block with bytes after its last record'
NO_BODY = 'event without a Body'
BODY_TOO_LONG = 'event Body longer than 1 MiB'


class _Input:
    """Reads a stream at any offset, with a buffer of about READ_BYTES: varints, exact reads and
    the search of a marker, never asking the stream for more than 2 * READ_BYTES at once."""

    def __init__(self, stream):
        self._stream = stream
        self._buffer = b''
        self._position = 0
        self._base = 0  # file offset of _buffer[0]
        self.eof = False

    @property
    def offset(self):
        return self._base + self._position

    def seek(self, offset):
        if self._base <= offset <= self._base + len(self._buffer):
            self._position = offset - self._base
            return
        self._stream.seek(offset)
        self._buffer, self._position, self._base, self.eof = b'', 0, offset, False

    def _fill(self, size):
        while len(self._buffer) - self._position < size and not self.eof:
            want = size - (len(self._buffer) - self._position)
            chunk = self._stream.read(max(READ_BYTES, min(want, 2 * READ_BYTES)))
            if not chunk:
                self.eof = True
                break
            self._base += self._position
            self._buffer = self._buffer[self._position:] + chunk
            self._position = 0

    def read(self, size):
        if size > 2 * READ_BYTES:  # a large block: in pieces, joined once
            parts, left = [], size
            while left > 0:
                part = self.read(min(left, READ_BYTES))
                if not part:
                    break
                parts.append(part)
                left -= len(part)
            return b''.join(parts)
        self._fill(size)
        data = self._buffer[self._position:self._position + size]
        self._position += len(data)
        return data

    def at_end(self):
        self._fill(1)
        return self._position >= len(self._buffer)

    def read_long(self):
        """A zig-zag varint long; EOFError at the end of the stream; ValueError when malformed."""
        shift = result = 0
        for _ in range(10):
            byte = self.read(1)
            if not byte:
                raise EOFError
            value = byte[0]
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise ValueError('varint longer than 10 bytes')

    def find(self, marker, start):
        """The file offset of the first `marker` at or after `start`, or None."""
        self.seek(start)
        while True:
            self._fill(len(marker))
            found = self._buffer.find(marker, self._position)
            if found >= 0:
                return self._base + found
            if self.eof:
                return None
            # Keep the last bytes: the marker may straddle two reads.
            self._position = max(self._position, len(self._buffer) - len(marker) + 1)
            self._fill(len(self._buffer) - self._position + READ_BYTES)


def _read_bytes(source):
    size = source.read_long()
    if size < 0 or size > MAX_BLOCK_BYTES:
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


# --- the writer schema ----------------------------------------------------------------------------

_PRIMITIVES = {'null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'}


class _Refused(ValueError):
    pass


def _full_name(schema, namespace):
    name = schema.get('name', '')
    if '.' in name or not (schema.get('namespace') or namespace):
        return name
    return '%s.%s' % (schema.get('namespace') or namespace, name)


def _check_schema(schema, named, path, namespace=''):
    """Walks a writer schema; returns whether its values can take no bytes. Refuses a recursive
    schema and an array of items that take no bytes (a count could repeat them without end)."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema == 'null'
        full = schema if '.' in schema or not namespace else '%s.%s' % (namespace, schema)
        for name in (full, schema):
            if name in path:
                raise _Refused('recursive type %s' % name)
            if name in named:
                return named[name]
        raise _Refused('unknown type %s' % schema)
    if isinstance(schema, list):
        for branch in schema:
            _check_schema(branch, named, path, namespace)
        return False  # the branch index takes a byte at least
    if not isinstance(schema, dict):
        raise _Refused('not a schema: %r' % (schema,))
    kind = schema.get('type')
    if kind in ('record', 'error', 'enum', 'fixed'):
        full = _full_name(schema, namespace)
        short = schema.get('name', '')
        if kind == 'enum':
            named[full] = named[short] = False
            return False
        if kind == 'fixed':
            named[full] = named[short] = schema.get('size') == 0
            return named[full]
        inner = schema.get('namespace') or (full.rpartition('.')[0] if '.' in full else namespace)
        path = path | {full, short}
        fields = [_check_schema(field.get('type'), named, path, inner) for field in schema.get('fields') or ()]
        empty = all(fields)  # every field checked, not only up to the first that takes bytes
        named[full] = named[short] = empty
        return empty
    if kind == 'array':
        if _check_schema(schema.get('items'), named, path, namespace):
            raise _Refused('an array of items that take no bytes')
        return False
    if kind == 'map':
        _check_schema(schema.get('values'), named, path, namespace)
        return False
    return _check_schema(kind, named, path, namespace)


def reader_schema(writer):
    """The schema to read a Capture file's records with: SequenceNumber (when a long) and Body.
    Raises _Refused for a writer schema this reader cannot read in bounded work."""
    if not isinstance(writer, dict) or writer.get('type') != 'record':
        raise _Refused('not a record')
    _check_schema(writer, {}, frozenset())
    types = {field.get('name'): field.get('type') for field in writer.get('fields') or ()}
    body = types.get('Body')
    if not (body == 'bytes' or (isinstance(body, list) and 'bytes' in body)):
        raise _Refused('no bytes Body')
    fields = []
    if types.get('SequenceNumber') == 'long':
        fields.append({'name': 'SequenceNumber', 'type': ['null', 'long'], 'default': None})
    fields.append({'name': 'Body', 'type': ['null', 'bytes'], 'default': None})
    reader = {'type': 'record', 'name': writer.get('name'), 'fields': fields}
    if writer.get('namespace'):
        reader['namespace'] = writer['namespace']
    return reader


# --- blocks ---------------------------------------------------------------------------------------

class _TooLarge(ValueError):
    pass


def _capped(decompressor, data):
    out = decompressor.decompress(data, MAX_BLOCK_BYTES + 1)
    if len(out) > MAX_BLOCK_BYTES:
        raise _TooLarge()
    return out


def _inflate(data):
    decompressor = zlib.decompressobj(-15)
    out = _capped(decompressor, data)
    if not decompressor.eof:
        raise ValueError('deflate data cut short')
    return out


def _snappy():
    """Snappy blocks (raw format, then the CRC-32 of the data), or None without a snappy library."""
    try:
        import cramjam
        decompress = lambda raw: bytes(cramjam.snappy.decompress_raw(raw))  # noqa: E731
    except ImportError:
        try:
            import snappy
            decompress = snappy.decompress
        except ImportError:
            return None

    def read(block):
        # The raw format starts with the uncompressed length (a varint): checked before inflating.
        length = shift = 0
        for byte in block[:5]:
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if length > MAX_BLOCK_BYTES:
            raise _TooLarge()
        out = decompress(block[:-4])
        if struct.unpack('>I', block[-4:])[0] != zlib.crc32(out) & 0xFFFFFFFF:
            raise ValueError('snappy block CRC mismatch')
        return out
    return read


def _zstandard(data):
    import zstandard
    out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(MAX_BLOCK_BYTES + 1)
    if len(out) > MAX_BLOCK_BYTES:
        raise _TooLarge()
    return out


def _decompressor(codec):
    """A function block data -> decompressed bytes (at most MAX_BLOCK_BYTES, else _TooLarge), or
    None for a codec this reader cannot decompress."""
    if codec in ('null', ''):
        return lambda data: data
    if codec == 'deflate':
        return _inflate
    if codec == 'bzip2':
        return lambda data: _capped(bz2.BZ2Decompressor(), data)
    if codec == 'xz':
        return lambda data: _capped(lzma.LZMADecompressor(), data)
    if codec == 'snappy':
        return _snappy()
    if codec == 'zstandard':
        try:
            import zstandard  # noqa: F401  pylint: disable=unused-import
        except ImportError:
            return None
        return _zstandard
    return None


class _BadFrame(Exception):
    """A block whose framing is not whole: reason, and where it would end if its size were right."""

    def __init__(self, reason, expected_end=None):
        super().__init__(reason)
        self.reason = reason
        self.expected_end = expected_end


def _frame_at(source, offset, sync, read_data=True):
    """(record count, data, end offset) of the block at `offset`; _BadFrame unless its framing is
    whole and ends with the sync marker. Without `read_data` the data is skipped (data None): a
    candidate block is checked without reading it."""
    source.seek(offset)
    try:
        count = source.read_long()
        size = source.read_long()
    except EOFError:
        raise _BadFrame(TRUNCATED_BLOCK) from None
    except ValueError:
        raise _BadFrame(CORRUPT_BLOCK) from None
    if count < 0 or size < 0 or size > MAX_BLOCK_BYTES:
        raise _BadFrame(CORRUPT_BLOCK)
    if read_data:
        data = source.read(size)
        if len(data) < size:
            raise _BadFrame(TRUNCATED_BLOCK)
    else:
        data = None
        source.seek(source.offset + size)
    marker = source.read(SYNC_BYTES)
    if len(marker) < SYNC_BYTES:
        raise _BadFrame(TRUNCATED_BLOCK)
    if marker != sync:
        raise _BadFrame(BAD_SYNC, source.offset)
    return count, data, source.offset


def _next_block(source, offset, sync, expected_end):
    """The offset of the first whole block after `offset` (or of the end of the file right after a
    sync marker), or None: right after a damaged marker if a block starts there, else after each
    later occurrence of the sync marker."""
    candidates = [expected_end] if expected_end is not None else []
    search = offset + 1
    while True:
        if not candidates:
            found = source.find(sync, search)
            if found is None:
                return None
            candidates.append(found + SYNC_BYTES)
            search = found + 1
        candidate = candidates.pop(0)
        source.seek(candidate)
        if source.at_end():
            return candidate
        try:
            _frame_at(source, candidate, sync, read_data=False)
        except _BadFrame:
            continue
        return candidate


def read_capture(lines, stream, table, needles=None):
    """Rows of an Event Hubs Capture Avro file, block by block. `lines` only receives the counts."""
    stream.seek(0)
    source = _Input(stream)
    try:
        metadata, sync = read_header(source)
        writer = bounded_json.loads(metadata['avro.schema'].decode('utf-8'))
        codec = metadata.get('avro.codec', b'null').decode('utf-8')
    except Exception as error:  # pylint: disable=broad-except
        yield Undecodable({'offset': 0}, BAD_HEADER, repr(error).encode('utf-8'))
        return
    try:
        schema = fastavro.parse_schema(writer)
        reader = fastavro.parse_schema(reader_schema(writer))
    except Exception as error:  # pylint: disable=broad-except
        yield Undecodable({'offset': 0}, BAD_SCHEMA % error, b'')
        return
    decompress = _decompressor(codec)
    offset = source.offset
    while True:
        source.seek(offset)
        if source.at_end():
            return
        position = {'block_offset': offset}
        try:
            count, data, end = _frame_at(source, offset, sync)
        except _BadFrame as bad:
            resume = _next_block(source, offset, sync, bad.expected_end)
            if resume is None:
                yield Undecodable(position, bad.reason, b'')
                return
            reason = bad.reason if bad.reason == BAD_SYNC else '%s: skipped to the next sync marker' % CORRUPT_BLOCK
            yield Undecodable(dict(position, resumed_at=resume), reason, b'')
            offset = resume
            continue
        offset = end
        if decompress is None:
            yield Undecodable(dict(position, records=count), '%s: %s' % (UNSUPPORTED_CODEC, codec), b'')
            continue
        try:
            block = decompress(data)
        except _TooLarge:
            yield Undecodable(dict(position, records=count), BLOCK_TOO_LARGE, b'')
            continue
        except Exception:  # pylint: disable=broad-except
            yield Undecodable(dict(position, records=count), CORRUPT_BLOCK, b'')
            continue
        del data
        yield from _block_records(block, count, schema, reader, position, table, needles, lines)


def _block_records(block, count, schema, reader, position, table, needles, lines):
    buffer = io.BytesIO(block)
    for index in range(count):
        record_position = dict(position, record=index)
        try:
            event = fastavro.schemaless_reader(buffer, schema, reader)
        except Exception:  # pylint: disable=broad-except
            yield Undecodable(dict(record_position, records_lost=count - index),
                              BAD_RECORD + ' (the rest of the block is lost)', b'')
            return
        if isinstance(event, dict) and event.get('SequenceNumber') is not None:
            record_position['sequence_number'] = event['SequenceNumber']
        body = event.get('Body') if isinstance(event, dict) else None
        yield from _body_items(body, table, record_position, needles, lines)
    if buffer.tell() < len(block):
        yield Undecodable(dict(position, records=count, bytes=len(block) - buffer.tell()), TRAILING_BYTES, b'')


def _body_items(body, table, position, needles, lines):
    """Decoded/Undecodable items of one event Body."""
    lines.lines_seen += 1
    if body is None:
        lines.lines_produced += 1
        yield Undecodable(position, NO_BODY, b'')
        return
    if len(body) > MAX_BODY_BYTES:
        lines.lines_produced += 1
        yield Undecodable(position, BODY_TOO_LONG, bytes(body[:4096]))
        return
    body = bytes(body)
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
            yield Undecodable(value_position, reason, raw.encode('utf-8', 'surrogateescape'))
            continue
        yield from value_rows(value, table, ROW, value_position)
