"""One small hostile record: it becomes a dead letter, or a typed null where Log Analytics would
type it so, in microseconds, and the rest of the file is still read.

Each case here stopped the whole run (RecursionError, ValueError) or held it for seconds before
the bounds of `transforms.read.bounded_json` and `transforms.read.ingest`.
"""

import io
import json
import time

import pytest

from tests.test_export_formats import read_file
from transforms.read import ingest
from transforms.read.dead_letter import NO_TIME
from transforms.read.dynamic import parse_json_text
from transforms.read.formats.lines import LineReader
from transforms.read.formats.records import decode_object
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS

TIME = '2024-03-01T10:00:00Z'
GOOD = {'TimeGenerated': TIME, 'DeviceName': 'vm1', 'FileSize': 120}
DEEP = '[' * 1000 + ']' * 1000   # 2 KB
TOO_DEEP = 'JSON nested deeper than 64 levels'
MAX_DEPTH = 64  # transforms.read.bounded_json.MAX_JSON_DEPTH


def nested(depth):
    return '[' * depth + ']' * depth


def timed(function, *args):
    """(value, CPU seconds of this process) of a call: the other processes of a loaded machine do not
    count, as they would in wall-clock time, and a call that blows up still does."""
    start = time.process_time()
    value = function(*args)
    return value, time.process_time() - start


# ------------------------------------------------------------------------------------ JSON nesting

def test_a_deeply_nested_json_line_is_a_dead_letter_and_the_next_line_is_read(tmp_path):
    path = tmp_path / 'DeviceFileEvents.jsonl'
    path.write_text(DEEP + '\n' + '{"TimeGenerated": "%s", "X": %s}\n' % (TIME, DEEP) + json.dumps(GOOD) + '\n')
    rows, dead, _ = read_file(str(path), DEVICE_FILE_EVENTS)
    assert [row['DeviceName'] for row in rows] == ['vm1']
    assert [(d['line'], d['reason']) for d in dead] == [(1, TOO_DEEP), (2, TOO_DEEP)]


def test_a_deeply_nested_pretty_printed_document_is_a_dead_letter_and_the_next_is_read(tmp_path):
    path = tmp_path / 'defender.json'
    path.write_text('{\n  "Deep": ' + DEEP + '\n}\n' + json.dumps(GOOD, indent=2) + '\n')
    rows, dead, _ = read_file(str(path), DEVICE_FILE_EVENTS)
    assert [row['DeviceName'] for row in rows] == ['vm1']
    assert [(d['line'], d['reason']) for d in dead] == [(1, TOO_DEEP)]


def test_a_deeply_nested_additional_fields_string_stays_a_string(tmp_path):
    # A dynamic column holding text parse_json cannot read keeps the text (Kusto's parse_json).
    path = tmp_path / 'DeviceEvents.jsonl'
    path.write_text(json.dumps(dict(GOOD, AdditionalFields=DEEP)) + '\n' + json.dumps(GOOD) + '\n')
    rows, dead, _ = read_file(str(path), DEVICE_EVENTS)
    assert dead == [] and [row['AdditionalFields'] for row in rows] == [DEEP, None]


def test_the_depth_limit_is_exact_and_ignores_brackets_inside_strings():
    from transforms.read import bounded_json
    limit = bounded_json.MAX_JSON_DEPTH
    assert limit == MAX_DEPTH
    assert bounded_json.loads(nested(limit)) is not None
    with pytest.raises(bounded_json.TooDeep):
        bounded_json.loads(nested(limit + 1))
    text = json.dumps({'a': '[[[[' * 100 + '\\"[', 'b': json.loads(nested(limit - 1))})
    assert bounded_json.loads(text) == json.loads(text)
    assert decode_object(('{"a": %s}' % nested(limit)).encode()) == (None, TOO_DEEP)
    assert decode_object(('{"a": %s}' % nested(limit - 1)).encode())[1] is None
    assert parse_json_text(nested(limit + 1)) == nested(limit + 1)


@pytest.mark.parametrize('depth', [1000, 100_000])
def test_nesting_is_rejected_in_microseconds(depth):
    _, seconds = timed(decode_object, nested(depth).encode())
    assert seconds < 0.05


def test_a_deeply_nested_authorization_string_is_a_session_without_scope():
    from transforms.detect import kql
    assert kql.parse_json_text('{"scope": %s}' % DEEP) == '{"scope": %s}' % DEEP


# ---------------------------------------------------------------------------------------- numbers

@pytest.mark.parametrize('value', ['9' * 4301, '-' + '9' * 100_000, '0x' + 'f' * 5000, '1e99999999', '1e9999999',
                                   '1' + '0' * 5000 + 'e-4970', '9' * 50 + '.5'])
def test_long_text_out_of_range_is_null_at_once(value):
    typed, seconds = timed(ingest.to_long, value)
    assert typed is None and seconds < 0.01


@pytest.mark.parametrize('value, expected', [
    ('0.' + '0' * 5000 + '9', 0), ('1e-99999999', 0), ('1' + '0' * 5000 + 'e-5000', 1),
    ('4' + '9' * 5000 + 'e-5000', 5), ('-2.' + '4' * 6000, -2), ('1e' + '0' * 5000 + '2', 100)])
def test_long_text_with_thousands_of_digits_keeps_only_what_rounding_needs(value, expected):
    typed, seconds = timed(ingest.to_long, value)
    assert typed == expected and seconds < 0.01


def test_huge_numbers_in_a_file_become_nulls_and_every_row_is_read(tmp_path):
    path = tmp_path / 'DeviceFileEvents.jsonl'
    lines = [json.dumps(dict(GOOD, FileSize='9' * 5000)),
             '{"TimeGenerated": "%s", "DeviceName": "big", "FileSize": %s}' % (TIME, '9' * 5000),
             '{"TimeGenerated": "%s", "DeviceName": "bigreal", "FileSize": %s}' % (TIME, '9' * 5000 + '.5e99999999'),
             json.dumps(dict(GOOD, FileSize='1e99999999')),
             json.dumps(dict(GOOD, TimeGenerated='9' * 5000 + '-03-01T10:00:00Z')),
             json.dumps(GOOD)]
    path.write_text('\n'.join(lines) + '\n')
    (rows, dead, _), seconds = timed(read_file, str(path), DEVICE_FILE_EVENTS)
    assert [(row['DeviceName'], row['FileSize']) for row in rows] == [
        ('vm1', None), ('big', None), ('bigreal', None), ('vm1', None), ('vm1', 120)]
    assert [(d['line'], d['reason']) for d in dead] == [(5, NO_TIME)]
    assert seconds < 1


# -------------------------------------------------------------------------------------- datetimes

@pytest.mark.parametrize('text', [
    '0000-12-31T23:59:59Z', '10000-01-01T00:00:00Z', '0001-01-01T00:30:00+01:00', '9999-12-31T23:30:00-01:00',
    '9' * 5000 + '-01-01T00:00:00Z'])
def test_datetimes_outside_kustos_range_are_null(text):
    assert ingest.parse_datetime_us(text) is None


@pytest.mark.parametrize('text, expected', [
    ('0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000000Z'),
    ('9999-12-31T23:59:59.9999999Z', '9999-12-31T23:59:59.999999Z'),
    ('9999-12-31T23:30:00+01:00', '9999-12-31T22:30:00.000000Z'),
])
def test_both_ends_of_kustos_range_are_datetimes(text, expected):
    assert ingest.format_datetime_us(ingest.parse_datetime_us(text)) == expected


@pytest.mark.parametrize('text, expected', [
    ('2016-12-31T23:59:60Z', '2016-12-31T23:59:59.000000Z'),
    ('2016-12-31T23:59:60.25Z', '2016-12-31T23:59:59.250000Z'),
    ('2015-06-30 23:59:60', '2015-06-30T23:59:59.000000Z'),
    ('2016-12-31T18:59:60-05:00', '2016-12-31T23:59:59.000000Z'),   # 23:59:60 UTC
    ('2024-02-29T23:59:60Z', '2024-02-29T23:59:59.000000Z'),        # the last day of any month
])
def test_a_leap_second_is_second_59_of_its_minute(text, expected):
    assert ingest.format_datetime_us(ingest.parse_datetime_us(text)) == expected


@pytest.mark.parametrize('text', [
    '2016-12-30T23:59:60Z', '2016-12-31T23:58:60Z', '2016-12-31T22:59:60Z', '2016-12-31T23:59:60+01:00',
    '2016-12-31T23:59:61Z', '9999-12-31T23:59:60Z'])
def test_second_60_anywhere_else_is_null(text):
    # 9999-12-31T23:59:60 would be 10000-01-01T00:00:00 were it rolled over; as second 59 it is
    # inside the range, but no leap second ends a month after the range's last day.
    assert ingest.parse_datetime_us(text) is None or text.startswith('9999')


def test_a_leap_second_row_is_read_and_an_out_of_range_year_is_a_dead_letter(tmp_path):
    path = tmp_path / 'AzureActivity.jsonl'
    rows = [{'TimeGenerated': t, 'Caller': c} for t, c in [
        ('2016-12-31T23:59:60Z', 'leap'), ('0000-06-01T00:00:00Z', 'year0'), ('10000-06-01T00:00:00Z', 'year10000'),
        ('0001-01-01T00:00:00Z', 'first')]]
    path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
    got, dead, _ = read_file(str(path), AZURE_ACTIVITY)
    assert [row['Caller'] for row in got] == ['leap', 'first']
    assert [(d['line'], d['reason']) for d in dead] == [(2, NO_TIME), (3, NO_TIME)]


# ----------------------------------------------------------------------- a split inside a long line

class _Recording(io.BytesIO):
    """A stream that remembers how many bytes it returned in all."""

    def __init__(self, data):
        super().__init__(data)
        self.returned = 0

    def read(self, size=-1):
        data = super().read(size)
        self.returned += len(data)
        return data

    def readline(self, size=-1):
        data = super().readline(size)
        self.returned += len(data)
        return data


def test_a_split_starting_inside_a_long_line_reads_only_its_own_range():
    long_line = b'{"x": "' + b'a' * (8 << 20) + b'"}\n'
    data = b'{"TimeGenerated": "x"}\n' + long_line + b'{"TimeGenerated": "y"}\n'
    stream = _Recording(data)
    # A range of 1 MiB in the middle of the long line: it holds no line start, and reads its own range only.
    lines = list(LineReader(stream, 2 << 20, lambda offset: True, stop=3 << 20))
    assert lines == [] and stream.returned <= (1 << 20)
    # The range that holds the next line's start reads to it and no further than its own end.
    start = len(data) - 100_000
    stream = _Recording(data)
    lines = list(LineReader(stream, start, lambda offset: True, stop=len(data)))
    assert [line for _, _, line in lines] == [b'{"TimeGenerated": "y"}'] and stream.returned <= 200_000
