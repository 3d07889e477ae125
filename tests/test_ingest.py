"""Typing of exported values as Log Analytics ingestion does it."""

import pytest

from transforms import ingest
from transforms.schema import DEVICE_EVENTS, DEVICE_FILE_EVENTS


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


@pytest.mark.parametrize('value, expected', [
    (None, ''), ('x', 'x'), (5, '5'), (1.5, '1.5'), (100000.0, '100000.0'), (True, 'true'),
    ({'b': 1, 'a': 'é'}, '{"b":1,"a":"é"}'), ([], '[]')])
def test_strings(value, expected):
    assert ingest.to_string(value) == expected


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
