"""Typing of exported values as Log Analytics ingestion does it."""

import pytest

from transforms.read import ingest
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS


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
    import random
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
