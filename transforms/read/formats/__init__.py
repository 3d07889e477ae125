"""Export formats of the three tables: the registry of format readers, and each file's format.

A format reader turns the bytes of one file (or of one byte range of it) into a stream of
``Decoded`` rows and ``Undecodable`` records (`transforms.read.formats.records`). `choose_format`
says which reader reads a file: detected from its first bytes, or forced by ``--input_format``.
The readers live in the modules of this package (JSON lines and documents, CSV, Event Hubs Capture
Avro); this module only knows their names, and reads gzip of any of them.
"""

import re

from transforms.read import bounded_json
from transforms.read.formats import eventhub_capture
from transforms.read.formats.compressed import GZIP, GZIP_MAGIC, DecompressedStream
from transforms.read.formats.csv_export import read_csv_export
from transforms.read.formats.eventhub_capture import read_capture
from transforms.read.formats.json_lines import (document_reader, read_activity_log, read_defender_streaming,
                                                read_json_lines, read_records)
from transforms.read.formats.lines import BOM, LineReader
from transforms.read.formats.records import ACTIVITY, DEFENDER, ENVELOPE, ROW, Undecodable

# What --input_format accepts: auto (detected per file) or one format for every file.
INPUT_FORMATS = ('auto', 'jsonl', 'records', 'activity_log', 'defender_streaming', 'eventhub_avro', 'csv')
JSON_FORMATS = {'jsonl': ROW, 'records': ENVELOPE, 'activity_log': ACTIVITY, 'defender_streaming': DEFENDER}
GZIP_PREFIX = 'gzip+'
DOCUMENT_SUFFIX = '+document'


def _gzip_reader(input_format):
    def read(lines, stream=None, table=None, needles=None):
        # Decompressed in bounded memory; a truncated or corrupt stream raises CompressedDataError,
        # which the source turns into a dead letter after the rows read before it.
        stream.seek(0)
        inner = DecompressedStream(stream, GZIP)
        head = inner.read(4096)
        inner.seek(0)
        fmt = choose_format(input_format, '', head)
        if fmt.startswith(GZIP_PREFIX):
            yield Undecodable({'offset': 0}, 'gzip inside gzip', b'')
            return
        inner_lines = LineReader(inner, 0, lambda offset: True, needles)
        try:
            yield from FORMAT_READERS[fmt](inner_lines, stream=inner, table=table, needles=needles)
        finally:
            lines.lines_seen += inner_lines.lines_seen
            lines.lines_produced += inner_lines.lines_produced
    read.__name__ = 'read_gzip_' + input_format
    return read


FORMAT_READERS = {
    'jsonl': read_json_lines,
    'records': read_records,
    'activity_log': read_activity_log,
    'defender_streaming': read_defender_streaming,
    'eventhub_avro': read_capture,
    'csv': read_csv_export,
}
FORMAT_READERS.update({name + DOCUMENT_SUFFIX: document_reader(shape) for name, shape in JSON_FORMATS.items()})
FORMAT_READERS.update({GZIP_PREFIX + name: _gzip_reader(name) for name in INPUT_FORMATS})
LINE_FORMATS = frozenset(JSON_FORMATS)

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
    if head.startswith(eventhub_capture.MAGIC):
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
        bounded_json.loads(first.decode('utf-8'))
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
