"""Dead-letter records: every input record that cannot be used, with where it came from and why."""

MAX_RAW_CHARS = 4096

# Output tags of the read steps: the typed rows (main output) and the dead letters.
ROWS = 'rows'
DEAD_LETTER = 'dead_letter'

# Reasons, as they appear in dead_letter-*.jsonl.
INVALID_UTF8 = 'invalid UTF-8'
NOT_JSON = 'not JSON'
NOT_OBJECT = 'not a JSON object'
TOO_LONG = 'record longer than 1 MiB'
TOO_DEEP = 'JSON nested deeper than 64 levels'  # transforms.read.bounded_json.MAX_JSON_DEPTH
NO_TIME = 'TimeGenerated missing or unparsable'
LATE = 'late'
READER_ERROR = 'reader error (the rest of the file is not read)'


def not_the_table(table, key_columns):
    """The reason of a record with none of its table's key columns (another table's export)."""
    return 'not a %s record: none of %s' % (table, ', '.join(key_columns))


def dead_letter(table, source, position, reason, raw=b''):
    """One dead-letter record.

    Args:
      table: the Log Analytics table the record was read for.
      source: the file (or subscription) it came from.
      position: where in the source: a dict such as ``{'line': 12, 'offset': 3310}``.
      reason: why it could not be used.
      raw: the record's bytes or text (kept up to MAX_RAW_CHARS characters).
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[:MAX_RAW_CHARS * 4]).decode('utf-8', errors='replace')
    return {'table': table, 'source': source, **position, 'reason': reason, 'raw': raw[:MAX_RAW_CHARS]}
