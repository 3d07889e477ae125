"""CSV exported from the Log Analytics portal ("Export to CSV") or Azure Data Explorer.

What these files hold, as the real samples in tests/data/samples show:

* a UTF-8 byte-order mark, CRLF line ends, one header line of column names, datetime columns
  named with a `` [UTC]`` suffix (``TimeGenerated [UTC]``), sometimes a ``$table`` column;
* datetimes as the portal displays them, ``4/28/2021, 2:32:14.029 PM`` (US month/day/year,
  12-hour clock, milliseconds), or ISO 8601 (Azure Data Explorer);
* JSON cells (dynamic columns, and the legacy AzureActivity string columns Authorization, Claims,
  Properties, HTTPRequest) either compact or pretty-printed over several CRLF lines inside quotes;
* the legacy AzureActivity layout without OperationNameValue/ActivityStatusValue: there,
  ``OperationName`` is a display name ("Update Incidents") or, for some operations, the operation
  itself, ``ActivityStatus`` is ``Started``/``Accepted``/``Succeeded``/``Failed``, and the operation
  is ``Properties.message`` (as in the new layout, where OperationNameValue is that operation
  upper-cased).

Every cell is kept as its text (the CSV unquoted, line ends inside quotes kept as they are); an
empty cell is a missing value. Portal datetimes become ISO 8601 so that `transforms.read.ingest` types
them like every other format. A record whose number of cells differs from the header's, or that
is not valid CSV or UTF-8, is a dead letter; the rest of the file is still read.
"""

import re
from typing import NamedTuple

from transforms.read import bounded_json
from transforms.read import dead_letter as reasons
from transforms.read.formats.lines import BLOCK_BYTES, BOM, MAX_RECORD_BYTES, UNDECODABLE_BYTES
from transforms.read.formats.records import Decoded, Undecodable, names_other_table
from transforms.read.schema import AZURE_ACTIVITY, COLUMNS, DATETIME

UTC_SUFFIX = ' [UTC]'
TABLE_COLUMN = '$table'
WRONG_COLUMN_COUNT = 'CSV record with %d cells, the header has %d'
BAD_CSV = 'not valid CSV'
NO_HEADER = 'CSV file without a header'
HEADER_TOO_LONG = 'CSV header longer than 1 MiB'
NO_USABLE_HEADER = 'CSV record after a header that could not be read'

_PORTAL_DATETIME = re.compile(
    r'\s*([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}),? +([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?'
    r' *([AaPp][Mm])\s*')


def portal_datetime_iso(text):
    """``4/28/2021, 2:32:14.029 PM`` -> ``2021-04-28T14:32:14.029Z``; other text unchanged."""
    match = _PORTAL_DATETIME.fullmatch(text)
    if match is None:
        return text
    month, day, year, hour, minute, second, fraction, half = match.groups()
    hour = int(hour)
    if not 1 <= hour <= 12 or not 1 <= int(month) <= 12:
        return text
    hour = hour % 12 + (12 if half.upper() == 'PM' else 0)
    return '%s-%02d-%02dT%02d:%s:%s%sZ' % (
        year, int(month), int(day), hour, minute, second or '00', '.' + fraction if fraction else '')


def header_names(cells):
    """Column names of a header record: the `` [UTC]`` suffix removed. Also the set of UTC columns."""
    names, utc = [], set()
    for cell in cells:
        name = cell.strip()
        if name.endswith(UTC_SUFFIX):
            name = name[:-len(UTC_SUFFIX)]
            utc.add(name)
        names.append(name)
    return names, utc


def _json_object(text):
    if not isinstance(text, str) or not text.strip().startswith('{'):
        return {}
    try:
        value = bounded_json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def legacy_activity_columns(row):
    """Fills OperationNameValue and ActivityStatusValue of the legacy AzureActivity layout.

    Only when the new columns are absent or empty. OperationNameValue: ``Properties.message``
    (the operation, e.g. ``Microsoft.Compute/virtualMachines/runCommand/action``), else
    ``OperationName`` when it is an operation (contains ``/``), else ``Authorization.action``,
    else the display name in OperationName as it is. ActivityStatusValue: ActivityStatus as it is
    (``Succeeded``, ``Started``...: the rule accepts both vocabularies).
    """
    if not row.get('OperationNameValue'):
        operation = _json_object(row.get('Properties')).get('message')
        name = row.get('OperationName')
        if not (isinstance(operation, str) and operation):
            if isinstance(name, str) and '/' in name:
                operation = name
            else:
                action = _json_object(row.get('Authorization')).get('action')
                operation = action if isinstance(action, str) and action else name
        if operation:
            row['OperationNameValue'] = operation
    if not row.get('ActivityStatusValue') and row.get('ActivityStatus'):
        row['ActivityStatusValue'] = row['ActivityStatus']
    return row


class CsvRecord(NamedTuple):
    """One CSV record: its first line (1-based) and byte offset, its cells (text; None when the
    record is longer than MAX_RECORD_BYTES, or not valid CSV), the error that made it invalid, and
    the start of its raw bytes."""
    line: int
    offset: int
    cells: list
    error: str
    raw: bytes


_FIELD_END = re.compile(rb'[,\r\n]')
_RAW_KEPT = 4 * 4096  # bytes of a record kept for its dead letter (dead_letter keeps 4096 characters)

# States of the parser, as Python's csv module (dialect excel, strict=True) names them.
_START_FIELD, _IN_FIELD, _IN_QUOTED, _AFTER_QUOTE, _EAT_CRNL, _SKIP_LINE = range(6)


def csv_records(stream, block_bytes=BLOCK_BYTES, max_record=MAX_RECORD_BYTES):
    """The records of a CSV byte stream, in bounded memory whatever their length.

    The same records, cells and errors as Python's ``csv.reader(lines, strict=True)`` over the
    file's lines (ended by ``\n``), which cannot bound a record: a quoted field may run over any
    number of lines, and past its field size limit csv loses track of the quotes (the rest of the
    field is then read as records of its own). Here the record boundaries come from the quotes,
    however long the record: a record over `max_record` bytes keeps no cells (it is reported, and
    the next record starts where it really ends). After an error the rest of the line is skipped,
    as csv does. Empty lines yield nothing.
    """
    block, position, base = b'', 0, 0   # base: file offset of block[0]
    number = 1                          # line number at `position`
    eof = False

    def more():
        nonlocal block, position, base, eof
        if eof:
            return False
        data = stream.read(block_bytes)
        if not data:
            eof = True
            return False
        base += position
        block, position = block[position:] + data, 0
        return True

    more()
    if block.startswith(BOM):
        position = len(BOM)
    while True:
        if position >= len(block) and not more():
            return
        start_line, start_offset = number, base + position
        cells, field, size = [], [], 0
        raw, error, too_long = bytearray(), None, False
        state = _START_FIELD
        at_record_start = True

        def keep(piece):
            nonlocal size, too_long
            if too_long:
                return
            size += len(piece)
            if size > max_record:
                too_long = True
                field.clear()
                cells.clear()
            else:
                field.append(piece)

        def end_field():
            if not too_long:
                cells.append(b''.join(field))
            field.clear()

        while True:
            if position >= len(block) and not more():
                # End of the file: as csv's end of data.
                if state == _IN_QUOTED and error is None:
                    error = 'unexpected end of data'
                elif state in (_START_FIELD, _IN_FIELD, _AFTER_QUOTE) and not at_record_start:
                    end_field()
                break
            before, done = position, False
            byte = block[position]
            if state == _START_FIELD:
                if byte == 0x22:  # "
                    state, position, at_record_start = _IN_QUOTED, position + 1, False
                elif byte == 0x0A:
                    position += 1
                    number += 1
                    if not at_record_start:
                        end_field()
                    done = True
                elif byte == 0x0D:
                    if not at_record_start:
                        end_field()
                    state, position = _EAT_CRNL, position + 1
                elif byte == 0x2C:  # ,
                    end_field()
                    position, at_record_start = position + 1, False
                else:
                    state, at_record_start = _IN_FIELD, False
            elif state == _IN_FIELD:
                found = _FIELD_END.search(block, position)
                end = found.start() if found else len(block)
                keep(block[position:end])
                position = end
                if found:
                    end_field()
                    if block[end] == 0x2C:
                        state, position = _START_FIELD, end + 1
                    elif block[end] == 0x0A:
                        position, number = end + 1, number + 1
                        done = True
                    else:
                        state, position = _EAT_CRNL, end + 1
            elif state == _IN_QUOTED:
                end = block.find(b'"', position)
                stop = end if end >= 0 else len(block)
                piece = block[position:stop]
                number += piece.count(b'\n')
                keep(piece)
                position = stop
                if end >= 0:
                    state, position = _AFTER_QUOTE, end + 1
            elif state == _AFTER_QUOTE:
                if byte == 0x22:
                    keep(b'"')
                    state, position = _IN_QUOTED, position + 1
                elif byte == 0x2C:
                    end_field()
                    state, position = _START_FIELD, position + 1
                elif byte == 0x0A:
                    end_field()
                    position, number = position + 1, number + 1
                    done = True
                elif byte == 0x0D:
                    end_field()
                    state, position = _EAT_CRNL, position + 1
                else:
                    error, state = "',' expected after '\"'", _SKIP_LINE
            elif state == _EAT_CRNL:
                if byte == 0x0A:
                    position, number = position + 1, number + 1
                    done = True
                elif byte == 0x0D:
                    position += 1
                else:
                    error, state = "new-line character seen in unquoted field", _SKIP_LINE
            else:  # _SKIP_LINE: csv drops the rest of the line after an error
                end = block.find(b'\n', position)
                if end < 0:
                    position = len(block)
                else:
                    position, number = end + 1, number + 1
                    done = True
            if len(raw) < _RAW_KEPT:
                raw += block[before:position][:_RAW_KEPT - len(raw)]
            if done:
                break
            if position > (1 << 16) and position >= len(block) // 2:
                base += position  # drop what is behind, keep the buffer small
                block, position = block[position:], 0
        if at_record_start and not cells and error is None:
            continue  # an empty line
        raw = bytes(raw).rstrip(b'\n').rstrip(b'\r')
        if error is not None or too_long:
            yield CsvRecord(start_line, start_offset, None, error if error is not None else reasons.TOO_LONG, raw)
        else:
            yield CsvRecord(start_line, start_offset, [cell.decode('utf-8', 'surrogateescape') for cell in cells],
                            None, raw)


def read_csv_export(lines, stream, table, needles=None):
    """Rows of a CSV export; `lines` only receives the counts (records seen / not skipped)."""
    stream.seek(0)
    header = utc = datetime_columns = None
    for record in csv_records(stream):
        position = {'line': record.line, 'offset': record.offset}
        raw, cells, error = record.raw, record.cells, record.error
        too_long = error == reasons.TOO_LONG
        if header is None:
            # A header that cannot be read is one dead letter, and so is every record after it:
            # read with another record as the header, each row's cells would go to wrong columns.
            if error is not None:
                yield Undecodable(position, HEADER_TOO_LONG if too_long else NO_HEADER, raw)
                header = False
                continue
            header, utc = header_names(cells)
            datetime_columns = utc | {name for name, kind in COLUMNS.get(table, {}).items() if kind == DATETIME}
            continue
        lines.lines_seen += 1
        if header is False:
            lines.lines_produced += 1
            yield Undecodable(position, NO_USABLE_HEADER, raw)
            continue
        if too_long:
            lines.lines_produced += 1
            yield Undecodable(position, reasons.TOO_LONG, raw)
            continue
        if needles is not None and error is None and not needles.search(
                '\n'.join(cells).encode('utf-8', 'surrogateescape')):
            continue
        lines.lines_produced += 1
        if error is not None:
            yield Undecodable(position, '%s: %s' % (BAD_CSV, error), raw)
            continue
        if any(UNDECODABLE_BYTES.search(cell) for cell in cells):
            yield Undecodable(position, reasons.INVALID_UTF8, raw)
            continue
        if len(cells) != len(header):
            yield Undecodable(position, WRONG_COLUMN_COUNT % (len(cells), len(header)), raw)
            continue
        row = {}
        for name, cell in zip(header, cells):
            if cell == '' or name in row:
                continue
            row[name] = portal_datetime_iso(cell) if name in datetime_columns else cell
        if names_other_table(row.get(TABLE_COLUMN) or row.get('Type'), table):
            continue
        if table == AZURE_ACTIVITY:
            legacy_activity_columns(row)
        yield Decoded(position, row)
