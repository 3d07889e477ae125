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

import csv
import re

from transforms.read import bounded_json
from transforms.read import dead_letter as reasons
from transforms.read.formats.lines import BOM, UNDECODABLE_BYTES, LineReader
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


def _text_lines(reader, pending):
    """The lines of the file as text with their line end, remembering them in `pending`."""
    for offset, number, line in reader:
        if line is None:
            pending.append((number, offset, None))
            yield '\n'
            continue
        if offset == 0 and line.startswith(BOM):
            line = line[len(BOM):]
        pending.append((number, offset, line))
        yield line.decode('utf-8', 'surrogateescape') + '\n'


def read_csv_export(lines, stream, table, needles=None):
    """Rows of a CSV export; `lines` only receives the counts (records seen / not skipped)."""
    stream.seek(0)
    pending = []
    source = _text_lines(LineReader(stream, 0, lambda offset: True), pending)
    records = csv.reader(source, strict=True)
    header = utc = datetime_columns = None
    while True:
        try:
            cells = next(records)
            error = None
        except StopIteration:
            break
        except csv.Error as exc:
            cells, error = None, exc
        record_lines, pending[:] = list(pending), []
        if not record_lines:
            continue
        number, offset = record_lines[0][0], record_lines[0][1]
        position = {'line': number, 'offset': offset}
        raw = b'\n'.join(line for _, _, line in record_lines if line is not None)
        too_long = any(line is None for _, _, line in record_lines)
        if cells == [] and not too_long:
            continue
        if header is None:
            # A header that cannot be read is one dead letter, and so is every record after it:
            # read with another record as the header, each row's cells would go to wrong columns.
            if too_long or error is not None:
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
