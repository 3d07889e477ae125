"""Decompression that streams with bounded memory and never loses the end of a file silently.

Beam's own decompression (``CompressionTypes.AUTO``) inflates a whole read buffer of compressed
input at once (1 MB of a gzip bomb becomes 1 GB in memory) and reads a gzip stream cut short as
if it ended there. `DecompressedStream` instead hands out at most what it is asked for, inflating
with ``max_length``, and raises `CompressedDataError` (with the offsets reached) for a stream cut
short or corrupt: the reader turns that into a dead letter ("truncated gzip", ...) after the rows
read before it.

gzip (several members one after another, as ``cat a.gz b.gz`` makes), bzip2 (several streams),
xz/lzma, deflate (zlib) and zstd are read; the kind comes from the file name (Beam's suffixes) or,
for gzip, from its magic bytes.
"""

import bz2
import lzma
import zlib

CHUNK_BYTES = 64 << 10     # compressed input handed to the decompressor at a time
GZIP_MAGIC = b'\x1f\x8b'

GZIP, BZIP2, LZMA, DEFLATE, ZSTD = 'gzip', 'bzip2', 'lzma', 'deflate', 'zstd'
SUFFIXES = {'.gz': GZIP, '.bz2': BZIP2, '.xz': LZMA, '.lzma': LZMA, '.deflate': DEFLATE, '.zst': ZSTD,
            '.zstd': ZSTD}


def kind_of(file_name):
    """The compression of a file from its name (Beam's suffixes), or None."""
    lower = file_name.lower()
    for suffix, kind in SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return None


class CompressedDataError(Exception):
    """A compressed stream that ends too early or is corrupt.

    ``reason`` (``truncated gzip``, ``corrupt gzip data: ...``), ``offset``: the decompressed bytes
    handed out before it, ``compressed_offset``: the compressed bytes read.
    """

    def __init__(self, reason, offset, compressed_offset):
        super().__init__('%s (after %d bytes, %d compressed bytes read)' % (reason, offset, compressed_offset))
        self.reason = reason
        self.offset = offset
        self.compressed_offset = compressed_offset


def _new_decompressor(kind):
    if kind == GZIP:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == DEFLATE:
        return zlib.decompressobj()
    if kind == BZIP2:
        return _Adapter(bz2.BZ2Decompressor())
    if kind == LZMA:
        return _Adapter(lzma.LZMADecompressor())
    raise ValueError('no streaming decompressor for %r' % kind)


class _Adapter:
    """bz2/lzma decompressors with zlib's interface: decompress(data, max_length), unconsumed_tail,
    unused_data, eof."""

    def __init__(self, decompressor):
        self._d = decompressor
        self.unconsumed_tail = b''

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused_data(self):
        return self._d.unused_data

    def decompress(self, data, max_length):
        # bz2/lzma keep unconsumed input inside; needs_input says whether they want more.
        out = self._d.decompress(data, max_length)
        self.unconsumed_tail = b'' if self._d.needs_input or self._d.eof else b'\0'  # marker: call again
        return out

    def more(self, max_length):
        out = self._d.decompress(b'', max_length)
        self.unconsumed_tail = b'' if self._d.needs_input or self._d.eof else b'\0'
        return out


class DecompressedStream:
    """A read-only, seekable view of the decompressed bytes of a compressed stream.

    ``read(n)`` returns at most `n` bytes (never inflating more than that at once); ``seek`` forward
    inflates and drops, backward restarts from the beginning. `raw` must be seekable to 0.
    """

    def __init__(self, raw, kind):
        self._raw = raw
        self._kind = kind
        self._start()

    def _start(self):
        self._raw.seek(0)
        self._decompressor = _new_decompressor(self._kind) if self._kind != ZSTD else None
        self._zstd = _zstd_reader(self._raw) if self._kind == ZSTD else None
        self._input = b''           # compressed bytes not handed to the decompressor yet
        self._compressed = 0        # compressed bytes read from raw
        self._position = 0          # decompressed bytes handed out
        self._members = 0           # gzip members / bzip2, xz streams finished
        self._done = False
        self._error_pending = None  # raised by the next read, after the bytes decompressed before it

    # io-like surface used by the readers
    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._position

    def close(self):
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def seek(self, offset, whence=0):
        if whence == 1:
            offset += self._position
        elif whence != 0:
            raise OSError('DecompressedStream seeks from the start or the current position only')
        if offset < self._position:
            self._start()
        while self._position < offset:
            if not self.read(min(offset - self._position, 1 << 20)):
                break
        return self._position

    def readline(self, limit=-1):
        raise OSError('DecompressedStream has no readline: read it in blocks')

    def read(self, size=-1):
        if size is None or size < 0:
            raise OSError('DecompressedStream reads at most a given number of bytes')
        if self._error_pending is not None:
            raise self._error_pending
        if size == 0 or self._done:
            return b''
        if self._zstd is not None:
            return self._read_zstd(size)
        parts, wanted = [], size
        try:
            while wanted > 0 and not self._done:
                data = self._inflate(wanted)
                if data:
                    parts.append(data)
                    wanted -= len(data)
        except CompressedDataError as error:
            if not parts:
                raise
            self._error_pending = error  # the bytes before the error first
        out = b''.join(parts)
        self._position += len(out)
        if self._error_pending is not None:
            self._error_pending.offset = self._position
        return out

    def _error(self, reason):
        return CompressedDataError(reason, self._position, self._compressed)

    def _inflate(self, wanted):
        """Some decompressed bytes (at most `wanted`), or b'' after moving the state on."""
        d = self._decompressor
        try:
            if d.unconsumed_tail:
                if isinstance(d, _Adapter):
                    return d.more(wanted)
                return d.decompress(d.unconsumed_tail, wanted)
            if d.eof:
                return self._next_member(d.unused_data + self._input)
            if not self._input:
                self._input = self._raw.read(CHUNK_BYTES)
                self._compressed += len(self._input)
                if not self._input:
                    raise self._error('truncated %s' % self._kind)
            data, self._input = self._input, b''
            return d.decompress(data, wanted)
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as error:
            raise self._error('corrupt %s data: %s' % (self._kind, error)) from None

    def _next_member(self, rest):
        """After the end of one member: another member follows, or the file ends."""
        self._members += 1
        if not rest:
            rest = self._raw.read(CHUNK_BYTES)
            self._compressed += len(rest)
        if not rest:
            self._done = True
            return b''
        if self._kind == GZIP and not rest.startswith(GZIP_MAGIC[:len(rest)]):
            raise self._error('corrupt gzip data: %d bytes after the end of the gzip stream are not a '
                              'gzip member' % len(rest))
        if self._kind == DEFLATE:
            raise self._error('corrupt deflate data: bytes after the end of the stream')
        self._decompressor = _new_decompressor(self._kind)
        self._input = rest
        return b''

    def _read_zstd(self, size):
        try:
            out = self._zstd.read(size)
        except Exception as error:  # pylint: disable=broad-except  # zstandard.ZstdError
            raise self._error('corrupt zstd data: %s' % error) from None
        if not out:
            self._done = True
        self._position += len(out)
        return out


def _zstd_reader(raw):
    try:
        import zstandard
    except ImportError as error:
        raise OSError('reading .zst files needs the zstandard package') from error
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
