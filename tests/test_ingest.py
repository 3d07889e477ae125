"""Typing of exported values as Log Analytics ingestion does it."""

import json
import random

import pytest

from transforms.read import blockscan, ingest
from transforms.read.schema import (AZURE_ACTIVITY, COLUMNS, DATETIME, DEVICE_EVENTS, DEVICE_FILE_EVENTS, DYNAMIC,
                                    KEY_COLUMNS, LONG, STRING)

from tests.test_bulk import clean_line, hostile_lines, relevant_line, valid_lines


@pytest.mark.parametrize('text, expected', [
    ('2024-03-01T10:00:00Z', '2024-03-01T10:00:00.000000Z'),
    ('2024-03-01T10:00:00.1234567Z', '2024-03-01T10:00:00.123456Z'),   # 7 digits truncated
    ('2024-03-01T10:00:00.9999999Z', '2024-03-01T10:00:00.999999Z'),
    ('2024-03-01T10:00:00', '2024-03-01T10:00:00.000000Z'),             # no zone: UTC
    ('2024-03-01 10:00:00', '2024-03-01T10:00:00.000000Z'),
    ('2024-03-01T10:00:00+02:00', '2024-03-01T08:00:00.000000Z'),
    ('2024-03-01T01:00:00+0200', '2024-02-29T23:00:00.000000Z'),
    ('2024-03-01T10:00:00-00:30', '2024-03-01T10:30:00.000000Z'),
    ('2024-03-01T10:00Z', '2024-03-01T10:00:00.000000Z'),
    ('2024-03-01', '2024-03-01T00:00:00.000000Z'),
    ('2024-03-01T23:59:59 UTC', '2024-03-01T23:59:59.000000Z'),
    ('2024-03-01T24:00:00Z', '2024-03-02T00:00:00.000000Z'),
    ('1969-12-31T23:59:59.5Z', '1969-12-31T23:59:59.500000Z'),
])
def test_datetimes(text, expected):
    assert ingest.format_datetime_us(ingest.parse_datetime_us(text)) == expected


@pytest.mark.parametrize('text', [
    '', 'yesterday', '1700000000', '2024-02-30T00:00:00Z', '2024-03-01T10:00:60Z', '2024-03-01t10:00:00z',
    '2024-03-01Z', '2024-03-01T10:00:00 +02:00', '4/28/2021, 2:32:14.029 PM', '2024-13-01'])
def test_unparsable_datetimes_are_null(text):
    assert ingest.parse_datetime_us(text) is None


@pytest.mark.parametrize('value, expected', [
    (12, 12), ('12', 12), (' 12 ', 12), ('12.5', 13), ('-2.5', -3), (12.4, 12), (2.5, 3), ('1e3', 1000),
    (True, None), ('abc', None), ('', None), (None, None), ({'a': 1}, None), ('9223372036854775808', None)])
def test_longs(value, expected):
    assert ingest.to_long(value) == expected


LONG_MAX = 9223372036854775807
LONG_MIN = -9223372036854775808


@pytest.mark.parametrize('value, expected', [
    (LONG_MAX, LONG_MAX), (LONG_MAX + 1, None), (LONG_MIN, LONG_MIN), (LONG_MIN - 1, None),
    ('9223372036854775807', LONG_MAX), ('9223372036854775808', None),
    ('-9223372036854775808', LONG_MIN), ('-9223372036854775809', None),
    ('9223372036854775807.4', LONG_MAX), ('9223372036854775807.5', None),   # rounded first, then range-checked
    ('0x7fffffffffffffff', LONG_MAX), ('0x8000000000000000', None),
])
def test_longs_at_both_ends_of_the_range(value, expected):
    # Kusto long is 64-bit: both ends are longs, one past either end is null.
    assert ingest.to_long(value) == expected


@pytest.mark.parametrize('value, expected', [
    (None, ''), ('x', 'x'), (5, '5'), (1.5, '1.5'), (100000.0, '100000.0'), (True, 'true'),
    ({'b': 1, 'a': 'é'}, '{"b":1,"a":"é"}'), ([], '[]')])
def test_strings(value, expected):
    assert ingest.typed_row(AZURE_ACTIVITY, {'Caller': value})['Caller'] == expected


def test_dynamic_string_holding_json_is_parsed():
    row = ingest.typed_row(DEVICE_EVENTS, {'TimeGenerated': '2024-03-01T00:00:00Z',
                                           'AdditionalFields': '{"Command":"Get-Process"}'})
    assert row['AdditionalFields'] == {'Command': 'Get-Process'}
    assert ingest.typed_row(DEVICE_EVENTS, {'AdditionalFields': 'plain'})['AdditionalFields'] == 'plain'


def test_typed_row_fills_missing_columns():
    row = ingest.typed_row(DEVICE_FILE_EVENTS, {'TimeGenerated': '2024-03-01T00:00:00Z', 'FileSize': '42'})
    assert row['DeviceName'] == '' and row['FileName'] == ''
    assert row['FileSize'] == 42 and row['InitiatingProcessId'] is None
    assert row['TimeGenerated'] == ingest.parse_datetime_us('2024-03-01T00:00:00Z')


def _general_parse(text):
    # The general parser alone (what parse_datetime_us does when the canonical shortcut declines).
    saved = ingest._parse_canonical
    ingest._parse_canonical = lambda _: None
    try:
        return ingest.parse_datetime_us(text)
    finally:
        ingest._parse_canonical = saved


def _datetime_texts(seed=11, count=5000):
    # Near-canonical datetimes: valid ones, out-of-range fields, a character replaced, fractions, zones.
    rnd = random.Random(seed)
    digits = '0123456789'
    texts = ['2024-03-01T06:16:29.4289583Z', '2024-02-29T23:59:59Z', '2023-02-29T00:00:00Z', '2024-03-01T24:00:00Z',
             '2024-13-01T00:00:00Z', '2024-03-01T06:16:29.Z', '2024-03-01T06:16:60Z', '0000-01-01T00:00:00Z',
             '2024-03-01T06:16:29.12 Z', '2024-03-01T06:16:29+Z', '2024-03-01T06:16:29.\u0661Z', '2024-03-01T06:1a:29Z',
             '0001-01-01T00:00:00Z', '0000-12-31T23:59:59.999999Z', '9999-12-31T23:59:59.9999999Z', '1600-02-29T00:00:00Z',
             '1700-02-29T00:00:00Z', '2000-02-29T12:00:00.000000000000000000000001Z', '2024-03-01T06:16:29Z\u00e9',
             '\uff12024-03-01T06:16:29Z', '2024-03-01T06:16:29.1\u00e9Z', '', 'Z', '2024-03-01T06:16:29']
    for _ in range(count):
        chars = list('%04d-%02d-%02dT%02d:%02d:%02d' % (
            rnd.randrange(0, 10000), rnd.randrange(0, 14), rnd.randrange(0, 33), rnd.randrange(0, 26),
            rnd.randrange(0, 62), rnd.randrange(0, 62)))
        if rnd.random() < 0.1:
            chars[rnd.randrange(len(chars))] = rnd.choice('x9 /T:-\u0663')
        fraction = rnd.choice(['', '.', '.' + ''.join(rnd.choice(digits) for _ in range(rnd.randrange(1, 10)))])
        texts.append(''.join(chars) + fraction + rnd.choice(['Z', 'Z', 'z', '', ' Z']))
    return texts


def test_canonical_datetime_shortcut_agrees_with_the_general_parser():
    shortcut_used = 0
    for text in _datetime_texts():
        shortcut_used += ingest._parse_canonical(text) is not None
        assert ingest.parse_datetime_us(text) == _general_parse(text), text
    assert shortcut_used > 1000  # the shortcut is exercised, not only the fallback


@pytest.mark.skipif(ingest._blockscan is None, reason='the compiled scanner is not built')
def test_the_compiled_canonical_parser_is_the_python_one():
    assert ingest._parse_canonical is ingest._blockscan.canonical_us
    texts = _datetime_texts(seed=12, count=20000)
    assert [ingest._blockscan.canonical_us(text) for text in texts] == [
        ingest._parse_canonical_python(text) for text in texts]
    assert sum(ingest._parse_canonical_python(text) is not None for text in texts) > 3000
    with pytest.raises(TypeError):
        ingest._blockscan.canonical_us(b'2024-03-01T06:16:29Z')


# The compiled typing of plain rows (ingest.NativeTyper) against typed_row of the decoded line.

_TABLES = (AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS)
_TIMES = ['2024-03-01T10:00:00Z', '2024-03-01T10:00:00.1234567Z', '2024-03-01T10:00:00.Z', '9999-12-31T23:59:59.9999999Z',
          '0001-01-01T00:00:00Z', '2024-02-29T23:00:00Z', '2023-02-29T23:00:00Z', '2024-03-01 10:00:00',
          '2024-03-01T10:00:00+02:00', '2024-03-01T24:00:00Z', '2024-03-31T23:59:60Z', '2024-03-01', 'yesterday', '']
# JSON texts of values for any column: every JSON type, and the texts each typing reads in its own way.
_VALUE_TEXTS = [
    'null', 'true', 'false', '0', '-0', '42', '-42', '1' * 18, '-' + '9' * 18, '1' * 19, '9223372036854775807',
    '9223372036854775808', '1' * 30, '1.5', '2.5', '-2.5', '1e3', '1E+2', '0.0', '1.0e-400', '1e400', '"12"', '" 7 "',
    '"1e3"', '"0x1F"', '"1_000"', '"x"', '""', '"caf\\u00e9"', '"\\u65e5\\u672c"', '"tab\\there"', '"q\\"uote\\\\"',
    '"\\/\\b\\f\\n\\r"', '"stra\u00dfe"', '"\u212a"', '"{\\"Command\\":\\"Get-Process\\"}"', '"[1,2]"', '"{bad"',
    '{}', '[]', '{"Command":"x","n":[1,{"a":null}]}', '[{"DnsQueryType":1}]', '{"a":1,"a":2}', '{"a" : [ 1 , 2 ] }',
    '"\\u0000"', '"\\u001f"', '"\\u007f"', '"\\u0080"', '"\\u07ff"', '"\\u0800"', '"\\uffff"',
] + ['"%s"' % text for text in _TIMES] + ['"2024-03-01T1\\u0030:00:00Z"']


def _reference(table, line):
    """What the per-line reader makes of `line`: its typed row, or None (a dead letter)."""
    value = json.loads(line)
    if not isinstance(value, dict):
        return None
    row = ingest.typed_row(table, value)
    return row if row['TimeGenerated'] is not None else None


def _vouched(table, line):
    """Whether the block scanner vouches for `line` as a plain row of `table`."""
    return blockscan.BlockScanner(((b'\x00\x01', False, 0),), None, KEY_COLUMNS[table]).scan_block(line + b'\n') is not None


def _row_line(rnd, table, spaces=True):
    """A JSON line of some of `table`'s columns (duplicates among them), other keys, and values of
    `_VALUE_TEXTS`, with whitespace between the tokens; TimeGenerated mostly canonical."""
    names = list(COLUMNS[table]) + ['Other', 'TimeGeneratedX', 'timegenerated']
    members = [('TimeGenerated', '"%s"' % rnd.choice(_TIMES[:3]) if rnd.random() < 0.9 else rnd.choice(_VALUE_TEXTS))]
    typical = {STRING: ['"x"', '"caf\\u00e9"', '"q\\"uote\\\\"', 'null'], LONG: ['42', '-7', 'null'],
               DATETIME: ['"%s"' % _TIMES[1], 'null'], DYNAMIC: ['{"Command":"x"}', '"{\\"a\\":1}"', '[1]']}
    for _ in range(rnd.randrange(0, 14)):
        name = rnd.choice(names)
        kind = COLUMNS[table].get(name)
        # Mostly a value of the column's own kind (else few lines would be typed whole).
        value = rnd.choice(typical[kind]) if kind and rnd.random() < 0.8 else rnd.choice(_VALUE_TEXTS)
        members.append((name, value))
    rnd.shuffle(members)
    space = (lambda: rnd.choice(['', '', ' ', '\t', ' \r'])) if spaces else (lambda: '')
    return ('{' + ','.join('%s"%s"%s:%s%s%s' % (space(), key, space(), space(), value, space())
                           for key, value in members) + '}').encode('utf-8')


@pytest.mark.skipif(ingest.native_typer(AZURE_ACTIVITY) is None, reason='the compiled scanner is not built')
@pytest.mark.parametrize('table', _TABLES)
def test_the_compiled_typing_of_a_vouched_line_is_typed_row(table):
    rnd, typer = random.Random(table), ingest.native_typer(table)
    typed = vouched = 0
    for _ in range(3000):
        line = _row_line(rnd, table)
        if not _vouched(table, line):
            continue
        vouched += 1
        row = typer(line)
        if row is not None:
            typed += 1
            assert row == _reference(table, line), line
            assert list(row) == list(ingest.typed_row(table, {})), line  # the columns in the schema's order
    # Both answers are exercised: the lines it types, and those it leaves to Python.
    assert 500 < typed < vouched - 300, (typed, vouched)


@pytest.mark.skipif(ingest.native_typer(AZURE_ACTIVITY) is None, reason='the compiled scanner is not built')
@pytest.mark.parametrize('table', _TABLES)
def test_the_compiled_typing_types_every_plain_export_row(table):
    rnd, typer = random.Random(7), ingest.native_typer(table)
    lines = [clean_line(rnd, table) for _ in range(200)] + [relevant_line(rnd, table) for _ in range(200)]
    for line in lines:
        assert typer(line) == ingest.typed_row(table, json.loads(line)), line


@pytest.mark.skipif(ingest.native_typer(AZURE_ACTIVITY) is None, reason='the compiled scanner is not built')
def test_the_compiled_typing_of_any_line_ends_without_error():
    # Lines it is never given (not vouched for): it answers a row or None, and never fails.
    rnd = random.Random(3)
    for table in _TABLES:
        typer = ingest.native_typer(table)
        lines = hostile_lines(table) + valid_lines() + [
            b'{"a":' + b'[' * 200_000 + b'}', b'{"a":"' + b'\\' * 100_001 + b'"}', b'{' * 50_000, b'{"a":1,}',
            b'{"TimeGenerated":"2024-03-01T10:00:00Z","x":"\\u12"}', b'{"TimeGenerated":"2024-03-01T10:00:00Z"',
            b'{"TimeGenerated":"2024-03-01T10:00:00Z"}}', b'{"TimeGenerated" "x"}', b'\xef\xbb\xbf{}']
        for _ in range(2000):
            line = bytearray(_row_line(rnd, table))
            for _ in range(rnd.randrange(1, 4)):
                where = rnd.randrange(len(line))
                line[where:where + rnd.randrange(0, 2)] = bytes([rnd.choice(b'{}[]",:\\ute0\x00\x80\xff')])
            lines.append(bytes(line))
        for line in lines:
            row = typer(line)
            assert row is None or isinstance(row, dict)
