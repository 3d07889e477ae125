"""The JSON records of the exports -> Log Analytics rows.

One JSON object of an export is a Log Analytics row, a ``{"records": [...]}`` envelope (data export
to Event Hubs, diagnostic settings), an Azure Activity Log record (camelCase) or a Defender XDR
streaming API record (the row in ``properties``); its shape is sniffed per object. Each yields
``Decoded`` rows (column name -> JSON value, named as in the Log Analytics table) and
``Undecodable`` records (with position and reason). Typing of the values is not done here but in
`transforms.read.ingest`, the same way for every format.
"""

import json
from typing import NamedTuple

from transforms.read import dead_letter as reasons
from transforms.read.bounded_json import TooDeep, loads
from transforms.read.formats.activity_log import activity_row
from transforms.read.schema import AZURE_ACTIVITY


class Decoded(NamedTuple):
    position: dict
    row: dict


class TypedRows(NamedTuple):
    """Rows already typed (`transforms.read.ingest.NativeTyper`), each with the columns of the table's
    schema, a TimeGenerated and one of the table's key columns (lines the block scanner vouched for)."""
    rows: list


class Undecodable(NamedTuple):
    position: dict
    reason: str
    raw: bytes


# Reasons of the dead letters of the JSON shapes (besides those of `transforms.read.dead_letter`).
BAD_ENVELOPE = 'records envelope whose "records" is not a list'
NESTED_ENVELOPE = 'records envelope inside a records envelope'
NO_PROPERTIES = 'Defender streaming record without a "properties" object'

# Record shapes inside the JSON formats.
ROW = 'row'                     # a Log Analytics row (table's own column names)
ENVELOPE = 'records'            # {"records": [...]}
ACTIVITY = 'activity_log'       # Azure Activity Log through diagnostic settings (camelCase)
DEFENDER = 'defender_streaming'  # Defender XDR streaming API record (row in "properties")

DEFENDER_CATEGORY_PREFIX = 'AdvancedHunting-'
TABLE_KEYS = ('Type', '$table')  # Log Analytics columns naming the table of a row


def decode_object(line):
    """A JSON object from one line of bytes, or the reason it is not one."""
    try:
        text = line.decode('utf-8')
    except UnicodeDecodeError:
        return None, reasons.INVALID_UTF8
    try:
        value = loads(text)
    except TooDeep:
        return None, reasons.TOO_DEEP
    except ValueError:
        return None, reasons.NOT_JSON
    if not isinstance(value, dict):
        return None, reasons.NOT_OBJECT
    return value, None


def sniff_shape(record):
    """The shape of one decoded JSON object, or None when it shows none (a row, or unknown)."""
    if 'records' in record and 'TimeGenerated' not in record:
        return ENVELOPE
    category = record.get('category')
    if isinstance(category, str) and category.startswith(DEFENDER_CATEGORY_PREFIX) and 'properties' in record:
        return DEFENDER
    if 'operationName' in record and 'time' in record and 'TimeGenerated' not in record:
        return ACTIVITY
    return None


def names_other_table(name, table):
    """Whether a table name found in a record (a ``Type`` or ``$table`` cell, a Defender category's
    suffix) names another table than `table`. Table names compare ignoring case; no name, or no
    `table` to compare with, is no other table."""
    return isinstance(name, str) and bool(name) and table is not None and name.lower() != table.lower()


def _row_of_other_table(row, table):
    """Whether a Log Analytics row says it belongs to another table (column Type or $table)."""
    return any(names_other_table(row.get(key), table) for key in TABLE_KEYS)


def defender_row(record, table):
    """(row, reason); row None and reason None: a record of another table, skipped."""
    properties = record.get('properties')
    if not isinstance(properties, dict):
        return None, NO_PROPERTIES
    category = record.get('category')
    if (isinstance(category, str) and category.startswith(DEFENDER_CATEGORY_PREFIX)
            and names_other_table(category[len(DEFENDER_CATEGORY_PREFIX):], table)):
        return None, None
    row = dict(properties)
    # The event time is Timestamp; the record's "time" is a later publish time and is never used.
    row['TimeGenerated'] = properties.get('Timestamp')
    return row, None


def record_rows(record, table, default=ROW, position=None, inside_envelope=False):
    """The rows of one decoded JSON object: Decoded / Undecodable items (None = skipped record).

    The shape is sniffed per object (`sniff_shape`); `default` is the shape of an object that
    shows none. An envelope's records are decoded one by one, each with its `index`.
    """
    position = position or {}
    shape = sniff_shape(record) or default
    if shape == ENVELOPE:
        if inside_envelope:
            yield Undecodable(position, NESTED_ENVELOPE, json.dumps(record, ensure_ascii=False).encode('utf-8'))
            return
        records = record.get('records')
        if not isinstance(records, list):
            yield Undecodable(position, BAD_ENVELOPE, json.dumps(record, ensure_ascii=False).encode('utf-8'))
            return
        inner_default = ROW if default == ENVELOPE else default
        for index, item in enumerate(records):
            inner = dict(position, index=index)
            if not isinstance(item, dict):
                yield Undecodable(inner, reasons.NOT_OBJECT, json.dumps(item, ensure_ascii=False).encode('utf-8'))
                continue
            yield from record_rows(item, table, inner_default, inner, inside_envelope=True)
        return
    if shape == DEFENDER:
        row, reason = defender_row(record, table)
        if reason:
            yield Undecodable(position, reason, json.dumps(record, ensure_ascii=False).encode('utf-8'))
        elif row is not None:
            yield Decoded(position, row)
        return
    if shape == ACTIVITY:
        if table is None or table == AZURE_ACTIVITY:
            yield Decoded(position, activity_row(record))
        return
    if _row_of_other_table(record, table):
        return
    yield Decoded(position, record)


def value_rows(value, table, default, position):
    """The rows of one JSON value of a document: an object, or an array of them (each with its
    ``index``); an item that is not an object is Undecodable."""
    values = value if isinstance(value, list) else [value]
    for index, item in enumerate(values):
        item_position = dict(position, index=index) if isinstance(value, list) else position
        if not isinstance(item, dict):
            yield Undecodable(item_position, reasons.NOT_OBJECT, json.dumps(item, ensure_ascii=False).encode('utf-8'))
            continue
        yield from record_rows(item, table, default, item_position)
