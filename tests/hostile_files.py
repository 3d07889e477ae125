"""Hostile export files, generated on the fly in bounded memory and time (nothing committed).

Also a command line to write them at full size, for the measurements of docs/formats.md:

    python tests/hostile_files.py zeros_gz 1G out/zeros.jsonl.gz
    python tests/hostile_files.py long_line 1G out/long.jsonl
    python tests/hostile_files.py avro_bomb 1G out/bomb.avro
"""

import io
import json
import os
import sys
import zlib

import fastavro

from capture_files import EVENT_DATA_SCHEMA

GOOD_ROW = {'TimeGenerated': '2024-03-01T10:00:00Z', 'DeviceName': 'vm1', 'FileName': 'script1.ps1'}
_MIB = 1 << 20

CAPTURE_SCHEMA = EVENT_DATA_SCHEMA


def good_line(n=0):
    return json.dumps(dict(GOOD_ROW, DeviceName='vm%d' % n)).encode() + b'\n'


def _deflated_zeros(size):
    """Raw deflate blocks (not final) of `size` zero bytes, made fast: one MiB of zeros compressed
    up to a full flush gives the same bytes every time, so they are repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = compressor.compress(bytes(_MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    rest = compressor.compress(bytes(size % _MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(size // _MIB):
        yield mib
    yield rest


def _crc_of_zeros(size, crc):
    zeros = bytes(_MIB)
    for _ in range(size // _MIB):
        crc = zlib.crc32(zeros, crc)
    return zlib.crc32(bytes(size % _MIB), crc)


def zeros_gz(path, size, before=b'', after=b''):
    """A gzip file of `before`, `size` zero bytes (no newline) and `after` (one gzip member)."""
    with open(path, 'wb') as handle:
        handle.write(b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff')  # gzip header: deflate, no name, mtime 0
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        handle.write(compressor.compress(before) + compressor.flush(zlib.Z_FULL_FLUSH))
        for block in _deflated_zeros(size):
            handle.write(block)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        handle.write(compressor.compress(after) + compressor.flush())
        crc = zlib.crc32(after, _crc_of_zeros(size, zlib.crc32(before)))
        handle.write(crc.to_bytes(4, 'little') + ((len(before) + size + len(after)) % (1 << 32)).to_bytes(4, 'little'))
    return str(path)


def long_line(path, size, before=b'', after=b''):
    """A file of `before`, one line of `size` bytes ('a's, then a newline) and `after`."""
    chunk = b'a' * _MIB
    with open(path, 'wb') as handle:
        handle.write(before)
        for _ in range(size // _MIB):
            handle.write(chunk)
        handle.write(b'a' * (size % _MIB) + b'\n' + after)
    return str(path)


def _long(value):
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def capture_record(body, sequence=0):
    """One EventData record, Avro binary."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(CAPTURE_SCHEMA), {
        'SequenceNumber': sequence, 'Offset': str(sequence), 'EnqueuedTimeUtc': '3/1/2024 10:00:00 AM',
        'SystemProperties': {}, 'Properties': {}, 'Body': body})
    return out.getvalue()


def capture_header(codec, sync=b'S' * 16):
    meta = {'avro.schema': json.dumps(CAPTURE_SCHEMA).encode(), 'avro.codec': codec.encode()}
    out = bytearray(b'Obj\x01') + _long(len(meta))
    for key, value in meta.items():
        out += _long(len(key)) + key.encode() + _long(len(value)) + value
    return bytes(out + _long(0) + sync)


def capture_block(records, codec='null', sync=b'S' * 16):
    data = b''.join(records)
    if codec == 'deflate':
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = compressor.compress(data) + compressor.flush()
    return _long(len(records)) + _long(len(data)) + data + sync


def avro_bomb(path, size, good_bodies=2):
    """An Event Hubs Capture file (deflate): a good block, a block of one record whose Body is
    `size` zero bytes (about size / 1000 bytes compressed), and a good block."""
    sync = b'S' * 16
    good = [capture_record(good_line(n), n) for n in range(good_bodies)]
    head = capture_record(b'', 99)[:-2]  # the record up to its Body union and length
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(head + b'\x02' + _long(size)) + compressor.flush(zlib.Z_FULL_FLUSH)]
    parts.extend(_deflated_zeros(size))  # union branch 1 (bytes), its length, then the zeros
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush())
    bomb = b''.join(parts)
    with open(path, 'wb') as handle:
        handle.write(capture_header('deflate', sync))
        handle.write(capture_block(good[:1], 'deflate', sync))
        handle.write(_long(1) + _long(len(bomb)) + bomb + sync)
        handle.write(capture_block(good[1:], 'deflate', sync))
    return str(path)


def parse_size(text):
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


if __name__ == '__main__':
    kind, size, target = sys.argv[1], parse_size(sys.argv[2]), sys.argv[3]
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    maker = {'zeros_gz': zeros_gz, 'long_line': long_line, 'avro_bomb': avro_bomb}[kind]
    if kind == 'avro_bomb':
        maker(target, size)
    else:
        maker(target, size, good_line(1), good_line(2))
    print(target, os.path.getsize(target))
