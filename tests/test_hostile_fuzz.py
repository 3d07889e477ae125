"""Hostile-input fuzzing of every reader: JSON lines (rows, records envelopes, Activity Log
records, Defender streaming records), pretty-printed JSON documents, CSV, Event Hubs Capture
Avro, and gzip of each.

Hypothesis mixes good records (each with a marker) and hostile ones (nesting past the limit,
numbers of thousands of digits or with huge exponents, years outside Kusto's range, leap seconds,
invalid UTF-8, truncated JSON, records over 1 MiB, bytes that are not JSON at all) and checks, for
every file:

* no exception escapes the reader, and its last-resort catch ("reader error") is never used;
* every record is a typed row or a dead letter: per line (or Avro event) the outcomes are one per
  record, or one for the whole line when the line itself cannot be read;
* every good record is a row, with its marker;
* the file is read in bounded time (the Hypothesis deadline).

CI runs a fixed number of examples per test, derandomized (seconds in all); a deeper run:
``HOSTILE_FUZZ_EXAMPLES=2000 python -m pytest tests/test_hostile_fuzz.py``.
"""

import collections
import csv
import gzip
import io
import json
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture_files import write_capture
from tests.test_export_formats import read_file
from transforms.read.dead_letter import READER_ERROR
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS

EXAMPLES = int(os.environ.get('HOSTILE_FUZZ_EXAMPLES', '25'))
FUZZ = settings(max_examples=EXAMPLES, deadline=10_000, derandomize=EXAMPLES <= 100,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
TIME = '"2024-03-01T10:00:00Z"'
MIB = 1 << 20
SEEDS = st.integers(0, 2 ** 32 - 1)


# --------------------------------------------------------------------------------- hostile pieces

def nested(depth):
    return '[' * depth + ']' * depth


def hostile_time(rnd):
    return rnd.choice([
        '"0000-01-01T00:00:00Z"', '"10000-01-01T00:00:00Z"', '"%s-01-01T00:00:00Z"' % ('9' * rnd.choice([5, 4301])),
        '"2016-12-31T23:59:60Z"', '"2024-03-01T23:59:60Z"', '"0001-01-01T00:00:00+01:00"', '"yesterday"',
        '"2024-03-01T10:00:00.%sZ"' % ('9' * 5000), 'null', '12', nested(rnd.choice([10, 70, 1000]))])


def hostile_long(rnd):
    return rnd.choice([
        '"%s"' % ('9' * rnd.choice([19, 20, 4300, 4301, 100_000])), '9' * rnd.choice([4300, 4301, 20_000]),
        '"1e99999999"', '"1e9999999"', '1e99999999', '"-1e-99999999"', '"0x%s"' % ('f' * 5000),
        '"%s.5"' % ('1' * 3000), '"1%se-%d"' % ('0' * 5000, rnd.choice([4990, 4981])), 'NaN', '-Infinity',
        '"%se5"' % ('0.' + '0' * 6000 + '1')])


def hostile_dynamic(rnd):
    depth = rnd.choice([63, 64, 65, 1000, 50_000])
    return rnd.choice([
        json.dumps(nested(depth)), nested(min(depth, 62)), json.dumps('{"Command": %s}' % nested(depth)),
        json.dumps('{"Command": %s}' % ('9' * 5000)), '"{\\"Command\\": \\"Get-Process\\""'])


def row_text(marker, rnd=None, table=DEVICE_EVENTS):
    """A row's JSON text; with `rnd`, one or more of its values hostile (raw JSON text)."""
    slots = {'TimeGenerated': TIME, 'ReportId': '7', 'AdditionalFields': '"{\\"Command\\":\\"Get-Process\\"}"'}
    if rnd is not None:
        for name, maker in (('TimeGenerated', hostile_time), ('ReportId', hostile_long),
                            ('AdditionalFields', hostile_dynamic)):
            if rnd.random() < 0.5:
                slots[name] = maker(rnd)
        if rnd.random() < 0.1:
            slots['Extra'] = nested(rnd.choice([65, 2000]))
    marker_column = 'Caller' if table == AZURE_ACTIVITY else 'DeviceName'
    return '{%s}' % ', '.join(['"%s": "%s"' % (marker_column, marker)] + ['"%s": %s' % kv for kv in slots.items()])


def shaped(text, shape):
    """A row's text in a record shape: as it is, a Defender streaming record, an Activity Log record."""
    if shape == 'defender':
        time = text.split('"TimeGenerated": ', 1)[1].split(', "ReportId"', 1)[0]
        return ('{"time": "2024-03-01T11:00:00Z", "category": "AdvancedHunting-DeviceEvents", '
                '"operationName": "Publish", "properties": %s}' % text.replace('"TimeGenerated"', '"Timestamp"', 1)
                if time else text)
    if shape == 'activity':
        return text.replace('"TimeGenerated"', '"time"', 1).replace('"Caller"', '"caller"', 1)[:-1] + \
            ', "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION"}'
    return text


def garbage_line(rnd):
    """A whole line that is not a record: each is one dead letter."""
    choice = rnd.randrange(9)
    if choice == 0:
        return b'x' + bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(1, 200))).replace(b'\n', b'?')
    if choice == 1:
        return nested(rnd.choice([65, 1000, 200_000])).encode()
    if choice == 2:
        return b'{"TimeGenerated": "2024-03-01T10:00:00Z", "DeviceName": "cut'
    if choice == 3:
        return rnd.choice([b'[1, 2]', b'"a string"', b'1e99999999', b'9' * 5000, b'null'])
    if choice == 4:
        return b'{"DeviceName": "\xff\xfe bad utf-8"}'
    if choice == 5:
        return b'{"records": "not a list"}'
    if choice == 6:
        return b'{"a": "' + b'x' * (MIB + rnd.randrange(1, 3000)) + b'"}'
    if choice == 7:
        return b'{"TimeGenerated": ' + TIME.encode() + b', "n": ' + b'1' * 5000 + b'.' + b'2' * 5000 + b'}\x00'
    return b'{"category": "AdvancedHunting-DeviceEvents", "properties": 7}'


# ------------------------------------------------------------------------------------ JSON lines

def json_lines_file(rnd, shape, table):
    """(file bytes, {line number: (records, good markers)})."""
    lines, expected = [], {}
    for number in range(1, rnd.randrange(3, 14)):
        kind = rnd.random()
        if kind < 0.2:
            lines.append(garbage_line(rnd))
            expected[number] = (1, [])
            continue
        count = rnd.randrange(1, 5) if kind < 0.4 else 1
        texts, good = [], []
        for index in range(count):
            marker = 'm%d_%d' % (number, index)
            hostile = rnd.random() < 0.5
            texts.append(shaped(row_text(marker, rnd if hostile else None, table), shape))
            if not hostile:
                good.append(marker)
        line = '{"records": [%s]}' % ', '.join(texts) if kind < 0.4 else texts[0]
        lines.append(line.encode('utf-8'))
        expected[number] = (count, good)
    ending = rnd.choice([b'\n', b'\r\n'])
    data = ending.join(lines) + (ending if rnd.random() < 0.7 else b'')
    if rnd.random() < 0.2:
        data = b'\xef\xbb\xbf' + data
    return data, expected


def outcomes_by_line(rows, dead, table):
    column = 'Caller' if table == AZURE_ACTIVITY else 'DeviceName'
    per_line = collections.Counter(d['line'] for d in dead)
    markers = [row[column] for row in rows]
    for marker in markers:
        per_line[int(marker[1:].split('_')[0])] += 1
    return per_line, set(markers)


def check(rows, dead, expected, table):
    assert not [d for d in dead if d['reason'].startswith(READER_ERROR)]
    per_line, markers = outcomes_by_line(rows, dead, table)
    assert set(per_line) <= set(expected)
    for number, (records, good) in expected.items():
        # One outcome per record, or one for a line that cannot be read at all.
        assert per_line[number] in (records, 1), (number, per_line[number], records)
        if len(good) == records:   # a line of good records only: every one of them is a row
            assert per_line[number] == records
        assert set(good) <= markers or per_line[number] == 1


def read_bytes(tmp_path, name, data, table):
    path = tmp_path / name
    path.write_bytes(data)
    rows, dead, _ = read_file(str(path), table)
    return rows, dead


SHAPES = [('row', DEVICE_EVENTS), ('defender', DEVICE_EVENTS), ('activity', AZURE_ACTIVITY)]


@FUZZ
@given(seed=SEEDS, shape_index=st.integers(0, len(SHAPES) - 1), compressed=st.booleans())
def test_json_lines_of_every_shape(tmp_path_factory, seed, shape_index, compressed):
    shape, table = SHAPES[shape_index]
    rnd = random.Random(seed)
    data, expected = json_lines_file(rnd, shape, table)
    tmp_path = tmp_path_factory.mktemp('jsonl')
    if compressed:
        rows, dead = read_bytes(tmp_path, 'export.json.gz', gzip.compress(data, mtime=0), table)
    else:
        rows, dead = read_bytes(tmp_path, 'export.json', data, table)
    check(rows, dead, expected, table)


# ------------------------------------------------------------------------------ pretty documents

@FUZZ
@given(seed=SEEDS, compressed=st.booleans())
def test_pretty_printed_documents(tmp_path_factory, seed, compressed):
    rnd = random.Random(seed)
    documents, good, hostile = [], [], 0
    for number in range(rnd.randrange(2, 8)):
        marker = 'd%d' % number
        if rnd.random() < 0.5:
            documents.append(json.dumps(json.loads(row_text(marker)), indent=2))
            good.append(marker)
        else:
            text = row_text(marker, rnd)
            documents.append('{\n  ' + text[1:-1].replace(', "', ',\n  "') + '\n}')
            hostile += 1
    data = ('\n'.join(documents) + '\n').encode()
    tmp_path = tmp_path_factory.mktemp('doc')
    name, data = ('doc.json.gz', gzip.compress(data, mtime=0)) if compressed else ('doc.json', data)
    rows, dead = read_bytes(tmp_path, name, data, DEVICE_EVENTS)
    assert not [d for d in dead if d['reason'].startswith(READER_ERROR)]
    assert set(good) <= {row['DeviceName'] for row in rows}
    assert len(rows) + len(dead) == len(documents)


# -------------------------------------------------------------------------------------------- CSV

def csv_cell(rnd):
    return rnd.choice([
        nested(rnd.choice([65, 3000])), '{"Command": %s}' % nested(1000), '9' * rnd.choice([4301, 30_000]),
        '1e99999999', '0000-01-01T00:00:00Z', '10000-01-01T00:00:00Z', '2016-12-31T23:59:60Z',
        '4/28/2021, 2:32:14.029 PM', 'line one\r\nline "two"\nthree', 'a,b,"c"', '\udcff\udcfe bad utf-8',
        'x' * (MIB + 10), '"' * 7, ''])


@FUZZ
@given(seed=SEEDS, compressed=st.booleans(), bom=st.booleans())
def test_csv_exports(tmp_path_factory, seed, compressed, bom):
    rnd = random.Random(seed)
    header = ['TimeGenerated [UTC]', 'DeviceName', 'ReportId', 'AdditionalFields']
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\r\n')
    writer.writerow(header)
    good, records = [], 0
    for number in range(rnd.randrange(2, 12)):
        marker = 'c%d' % number
        row = ['2024-03-01T10:00:00Z', marker, '7', '{"Command":"Get-Process"}']
        if rnd.random() < 0.5:
            for column in (0, 2, 3):
                if rnd.random() < 0.5:
                    row[column] = csv_cell(rnd)
            if rnd.random() < 0.15:
                row.append('extra cell')
        else:
            good.append(marker)
        writer.writerow(row)
        records += 1
    data = text.getvalue().encode('utf-8', 'surrogateescape')
    data = (b'\xef\xbb\xbf' if bom else b'') + data
    tmp_path = tmp_path_factory.mktemp('csv')
    name, data = ('q.csv.gz', gzip.compress(data, mtime=0)) if compressed else ('q.csv', data)
    rows, dead = read_bytes(tmp_path, name, data, DEVICE_EVENTS)
    assert not [d for d in dead if d['reason'].startswith(READER_ERROR)]
    assert set(good) <= {row['DeviceName'] for row in rows}
    assert len(rows) + len(dead) == records


# ------------------------------------------------------------------------------------------- Avro

@FUZZ
@given(seed=SEEDS, codec=st.sampled_from(['null', 'deflate']), compressed=st.booleans())
def test_event_hubs_capture_bodies(tmp_path_factory, seed, codec, compressed):
    rnd = random.Random(seed)
    bodies, good, garbage = [], [], set()
    for number in range(rnd.randrange(2, 30)):
        marker = 'a%d' % number
        kind = rnd.random()
        if kind < 0.4:
            bodies.append(row_text(marker).encode())
            good.append(marker)
        elif kind < 0.7:
            bodies.append(row_text(marker, rnd).encode())
        elif kind < 0.8:
            bodies.append(None)
        else:
            bodies.append(garbage_line(rnd))
            garbage.add(number)
    tmp_path = tmp_path_factory.mktemp('avro')
    buffer = io.BytesIO()
    write_capture(buffer, bodies, codec=codec, sync_interval=rnd.choice([200, 5000, 1 << 20]))
    data = buffer.getvalue()
    name, data = ('00.avro.gz', gzip.compress(data, mtime=0)) if compressed else ('00.avro', data)
    rows, dead = read_bytes(tmp_path, name, data, DEVICE_EVENTS)
    assert not [d for d in dead if d['reason'].startswith(READER_ERROR)]
    assert set(good) <= {row['DeviceName'] for row in rows}
    # Per event (its SequenceNumber is its index): one outcome, or more for a body that is not
    # one record (a body may hold several JSON values one after another, each read).
    outcomes = collections.Counter(d['sequence_number'] for d in dead)
    marked = [row for row in rows if row['DeviceName'].startswith('a')]
    outcomes.update(int(row['DeviceName'][1:]) for row in marked)
    assert len(marked) == len(rows) or garbage   # a row without a marker comes from a garbage body
    for number in range(len(bodies)):
        assert outcomes[number] >= 1 if number in garbage else outcomes[number] == 1, (number, outcomes[number])
    assert set(outcomes) == set(range(len(bodies)))


# ------------------------------------------------------------------------------- damaged bytes

def damage(rnd, data):
    """The bytes of a file, damaged: bytes flipped, a range zeroed or cut out, or the file cut short."""
    data = bytearray(data)
    for _ in range(rnd.randrange(1, 4)):
        if not data:
            break
        choice = rnd.randrange(4)
        at = rnd.randrange(len(data))
        if choice == 0:
            data[at] ^= 1 << rnd.randrange(8)
        elif choice == 1:
            data[at:at + rnd.randrange(1, 64)] = bytes(min(64, len(data) - at))[:len(data[at:at + 64])]
        elif choice == 2:
            del data[at:at + rnd.randrange(1, 64)]
        else:
            del data[at:]
    return bytes(data)


def good_rows(count):
    return [row_text('g%d' % n).encode() for n in range(count)]


@FUZZ
@given(seed=SEEDS, fmt=st.sampled_from(['jsonl', 'jsonl.gz', 'csv', 'avro', 'avro-deflate', 'doc']))
def test_damaged_files_never_stop_the_reader(tmp_path_factory, seed, fmt):
    rnd = random.Random(seed)
    rows = good_rows(rnd.randrange(5, 60))
    if fmt.startswith('avro'):
        buffer = io.BytesIO()
        write_capture(buffer, rows, codec='deflate' if fmt.endswith('deflate') else 'null', sync_interval=300)
        data, name = buffer.getvalue(), '00.avro'
    elif fmt == 'csv':
        data = b'TimeGenerated,DeviceName\r\n' + b''.join(b'2024-03-01T10:00:00Z,g%d\r\n' % n for n in range(len(rows)))
        name = 'q.csv'
    elif fmt == 'doc':
        data = b'\n'.join(json.dumps(json.loads(r), indent=2).encode() for r in rows) + b'\n'
        name = 'doc.json'
    else:
        data = b'\n'.join(rows) + b'\n'
        name = 'export.jsonl'
        if fmt.endswith('.gz'):
            data, name = gzip.compress(data, mtime=0), name + '.gz'
    tmp_path = tmp_path_factory.mktemp('damaged')
    got, dead = read_bytes(tmp_path, name, damage(rnd, data), DEVICE_EVENTS)
    assert not [d for d in dead if d['reason'].startswith(READER_ERROR)]
    # A damaged file never yields more rows than it held (one more: a damaged byte may split a line
    # in two), unless its compressed data was damaged: inflating it may repeat earlier bytes before
    # the damage is detected, and then the damage is a dead letter too.
    damaged_stream = any(d['reason'].startswith(('corrupt', 'truncated')) for d in dead)
    assert len(got) <= len(rows) + 1 or (fmt == 'jsonl.gz' and damaged_stream)


# ------------------------------------------------------------------------ the CSV record parser

def csv_module_records(text):
    """What Python's csv.reader(strict=True) makes of the text's lines: (cells or None, error or None)."""
    lines = [line + '\n' for line in text.split('\n')]
    if lines[-1] == '\n':
        lines.pop()
    reader = csv.reader(lines, strict=True)
    found = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return found
        except csv.Error as error:
            found.append((None, str(error).split(' - ')[0]))
            continue
        if cells:
            found.append((cells, None))


@settings(max_examples=max(200, EXAMPLES * 8), deadline=None, derandomize=EXAMPLES <= 100)
@given(text=st.text(alphabet=st.sampled_from(list('ab,"\r\n \0é')), max_size=60),
       block_bytes=st.integers(1, 8))
def test_the_csv_parser_reads_what_the_csv_module_reads(text, block_bytes):
    from transforms.read.formats.csv_export import csv_records
    data = text.encode('utf-8')
    got = [(r.cells, r.error) for r in csv_records(io.BytesIO(data), block_bytes=block_bytes)]
    expected = csv_module_records(text)
    assert got == expected


@settings(max_examples=max(100, EXAMPLES * 4), deadline=None, derandomize=EXAMPLES <= 100)
@given(cells=st.lists(st.lists(st.text(alphabet=st.sampled_from(list('ab,"\r\n')), max_size=30),
                               min_size=1, max_size=4), min_size=1, max_size=8),
       limit=st.integers(4, 40))
def test_a_record_over_the_limit_is_reported_and_the_next_one_is_read(cells, limit):
    from transforms.read.dead_letter import TOO_LONG
    from transforms.read.formats.csv_export import csv_records
    text = io.StringIO()
    csv.writer(text, lineterminator='\r\n').writerows(cells)
    data = text.getvalue().encode()
    got = list(csv_records(io.BytesIO(data), block_bytes=5, max_record=limit))
    # Every record written is one record read, whole, or too long.
    expected = cells   # csv.writer quotes a lone empty cell: no row is an empty line
    assert len(got) == len(expected)
    for record, row in zip(got, expected):
        if record.error == TOO_LONG:
            assert record.cells is None
        else:
            assert record.cells == row and record.error is None
