"""The pixels of a PNG screenshot (8-bit RGB or RGBA, not interlaced, as headless Chromium writes
them), with numpy for the row filters, for tests that look at a rendered page."""

import struct
import zlib

import numpy

SIGNATURE = b'\x89PNG\r\n\x1a\n'
CHANNELS = {2: 3, 6: 4}   # colour type -> bytes per pixel (RGB, RGBA)


def _chunks(data):
    position = len(SIGNATURE)
    while position < len(data):
        length, kind = struct.unpack('>I4s', data[position:position + 8])
        yield kind, data[position + 8:position + 8 + length]
        position += 12 + length


def _paeth_row(row, previous, bpp):
    out, up = list(row), list(previous)
    for i in range(bpp):
        out[i] = (out[i] + up[i]) & 0xFF   # a = c = 0: the predictor is the byte above
    for i in range(bpp, len(out)):
        a, b, c = out[i - bpp], up[i], up[i - bpp]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return numpy.array(out, dtype=numpy.uint8)


def _average_row(row, previous, bpp):
    out, up = list(row), list(previous)
    for i in range(len(out)):
        out[i] = (out[i] + (((out[i - bpp] if i >= bpp else 0) + up[i]) >> 1)) & 0xFF
    return numpy.array(out, dtype=numpy.uint8)


def read_png(path):
    """An array of shape (height, width, channels) of the image's pixels."""
    with open(path, 'rb') as handle:
        data = handle.read()
    assert data.startswith(SIGNATURE), 'not a PNG file'
    header, compressed = None, []
    for kind, body in _chunks(data):
        if kind == b'IHDR':
            header = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            compressed.append(body)
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in CHANNELS and interlace == 0, header
    bpp = CHANNELS[colour]
    raw = numpy.frombuffer(zlib.decompress(b''.join(compressed)), dtype=numpy.uint8)
    stride = width * bpp
    rows = raw.reshape(height, stride + 1)
    image = numpy.zeros((height, stride), dtype=numpy.uint8)
    previous = numpy.zeros(stride, dtype=numpy.uint8)
    for y in range(height):
        kind, row = rows[y, 0], rows[y, 1:]
        if kind == 0:
            current = row.copy()
        elif kind == 1:  # Sub: a running sum per channel
            current = (numpy.cumsum(row.reshape(width, bpp).astype(numpy.int64), axis=0) & 0xFF).astype(
                numpy.uint8).reshape(stride)
        elif kind == 2:
            current = ((row.astype(numpy.int64) + previous) & 0xFF).astype(numpy.uint8)
        elif kind == 3:
            current = _average_row(row.tobytes(), previous.tobytes(), bpp)
        else:
            current = _paeth_row(row.tobytes(), previous.tobytes(), bpp)
        image[y] = current
        previous = current
    return image.reshape(height, width, bpp)
