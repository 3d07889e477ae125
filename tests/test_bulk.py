"""The native block validation of ``--scan full`` (transforms/read/bulk.py) against the per-line reader.

The read step with ``validate_skipped`` (needles + `BulkValidator`) must produce exactly what it
produces without needles, where every line is decoded in Python (the reference): the same rows
with the same windows, the same dead letters at the same lines, the same counts (read, parsed,
outside the range, rows per window), for random files mixing clean rows with every kind of line the
validator must hand back (bad JSON, JSON that Python reads and msgspec does not or the other way,
invalid UTF-8, deep nesting, other shapes, other datetime forms, invalid dates), with windows whose
boundaries fall on minutes, seconds or neither, read whole, in two splits, or cut by a dynamic
split.
"""

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apache_beam.io.range_trackers import OffsetRangeTracker

from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics
from transforms.detect.windows import QueryWindows
from transforms.read import blockscan, bulk, ingest
from transforms.read.dead_letter import DEAD_LETTER, ROWS
from transforms.read.formats.lines import LineReader
from transforms.read.ingest import format_datetime_us, parse_datetime_us
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS, KEY_COLUMNS
from transforms.read.sources import STATS, ExportSource

from tests.test_prefilter import export_lines

DAY = 86_400_000_000
MINUTE = 60_000_000
WINDOWS = {
    'daily': QueryWindows(DAY, DAY),
    'daily-range': QueryWindows(DAY, DAY, 0, 1709251200000000 + DAY, 1709251200000000 + 3 * DAY),
    'sliding-minutes': QueryWindows(2 * 60 * MINUTE, 30 * MINUTE, 7 * MINUTE),
    'seconds': QueryWindows(90 * 1_000_000, 90 * 1_000_000, 1_000_000),
    'odd': QueryWindows(DAY, DAY, 1234),
    'hours': QueryWindows(6 * 60 * MINUTE, 3 * 60 * MINUTE, 60 * MINUTE),
    'margin': QueryWindows(DAY, DAY, 0, None, None, 5 * MINUTE + 500_000),
}
SENTINEL = Semantics.named('sentinel')
STRICT = Semantics.named('strict')

IRRELEVANT = {
    AZURE_ACTIVITY: {'OperationNameValue': 'Microsoft.Compute/virtualMachines/write', 'Caller': 'alice',
                     'Authorization': '{"scope":"/subscriptions/s"}', 'ActivityStatusValue': 'Success'},
    DEVICE_FILE_EVENTS: {'ActionType': 'FileCreated', 'InitiatingProcessFileName': 'svchost.exe',
                         'FileName': 'a.txt', 'AdditionalFields': {'x': [1, {'y': None}]}},
    DEVICE_EVENTS: {'ActionType': 'ProcessCreated', 'InitiatingProcessCommandLine': 'cmd.exe /c dir',
                    'AdditionalFields': None, 'Count': -0.5e3},
}
RELEVANT = {
    AZURE_ACTIVITY: {'OperationNameValue': 'Microsoft.Compute/virtualMachines/runCommand/action',
                     'ResourceId': '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1',
                     'ActivityStatusValue': 'Success', 'Caller': 'bob'},
    DEVICE_FILE_EVENTS: {'ActionType': 'FileCreated', 'InitiatingProcessFileName': 'RunCommandExtension.exe',
                         'FileName': 'script1.ps1', 'DeviceName': 'vm1'},
    DEVICE_EVENTS: {'ActionType': 'PowerShellCommand', 'InitiatingProcessCommandLine': 'powershell -File script1.ps1',
                    'AdditionalFields': '{"Command":"Get-Process"}', 'DeviceName': 'vm1'},
}


def _time(rnd):
    micros = rnd.randrange(1709251200000000 - DAY, 1709251200000000 + 5 * DAY)
    text = format_datetime_us(micros)[:-8]  # to the second
    fraction = micros % 1_000_000
    return text + rnd.choice(['.%06d' % fraction + '7', '.%03d' % (fraction // 1000), '', '.']) + 'Z'


def clean_line(rnd, table):
    row = dict(IRRELEVANT[table], TimeGenerated=_time(rnd), DeviceId='%x' % rnd.randrange(1 << 40))
    if rnd.random() < 0.2:
        row['Note'] = rnd.choice(['straße', 'Ǆ', '日本', '\u212a', 'x\ty'])
    return json.dumps(row, ensure_ascii=rnd.random() < 0.5).encode('utf-8')


# Lines the validator must not accept as they are: each is decided by the per-line reader.
def hostile_lines(table):
    time = '"TimeGenerated":"2024-03-02T10:00:00.1234567Z"'
    return [
        b'', b'   ', b'{"a":1', b'[1,2]', b'null', b'{"a":1}{"b":2}', b'{' + time.encode() + b'} {' + time.encode() + b'}',
        ('{"a":NaN,%s}' % time).encode(), ('{"a":-Infinity,%s}' % time).encode(),
        ('{"a":"\\ud800",%s}' % time).encode(), ('{"a":"\\udc00\\ud800",%s}' % time).encode(),
        ('{"a":"\xff",%s}' % time).encode('latin-1'), ('{"a":"\xed\xa0\x80",%s}' % time).encode('latin-1'),
        ('{"a":%s1%s,%s}' % ('[' * 64, ']' * 64, time)).encode(),
        ('{"a":"%s",%s}' % ('[' * 70, time)).encode(),
        b'{"TimeGenerated":"2024-02-30T10:00:00Z"}', b'{"TimeGenerated":"0000-01-01T00:00:00Z"}',
        b'{"TimeGenerated":"2024-03-02T24:00:00Z"}', b'{"TimeGenerated":"2024-03-31T23:59:60Z"}',
        b'{"TimeGenerated":"2024-03-02 10:00:00"}', b'{"TimeGenerated":"2024-03-02T10:00:00+01:00"}',
        b'{"TimeGenerated":"2024-03-02T10:00:00.x"}', b'{"TimeGenerated":1709373600}', b'{"TimeGenerated":null}',
        b'{"TimeGenerated":"2024-03-02T1\xd9\xa0:00:00Z"}',
        b'{"Device":"x"}', ('{%s,"Type":"%s"}' % (time, table)).encode(), ('{%s,"Type":"Other"}' % time).encode(),
        ('{%s,"$table":"Other"}' % time).encode(), ('{%s,"properties":{"a":1}}' % time).encode(),
        ('{"category":"AdvancedHunting-%s","properties":{"Timestamp":"2024-03-02T10:00:00Z"},%s}' % (table, time)).encode(),
        ('{"records":[{%s}]}' % time).encode(),
        ('{"operationName":"x","time":"2024-03-02T10:00:00Z"}').encode(),
        ('{%s}\r' % time).encode(), (' {%s}' % time).encode(), ('{%s} ' % time).encode(),
        b'\xef\xbb\xbf{' + time.encode() + b'}',
    ]


def valid_lines():
    """Valid plain rows at the edges of the checks, which the validator may take."""
    time = '"TimeGenerated":"2024-03-02T10:00:00.1234567Z"'
    return [
        ('{"a":%s1%s,%s}' % ('[' * 63, ']' * 63, time)).encode(),  # 64 levels with the row's object
        ('{"a":1%s,%s}' % ('0' * 5000, time)).encode(),  # an integer longer than int() reads
        ('{"a":"-File script1.ps1 runcommand RunCommandExtension.exe",%s}' % time).encode(),
        b'{"TimeGenerated":"2024-03-02T10:00:00.Z","x":"\\u00e9\\/\\"","y":[],"z":{}}',
        b'{"TimeGenerated":"2024-03-02T10:00:00Z","Time\\u0047enerated":"2024-03-03T10:00:00Z"}',
        b'{"TimeGenerated":"\\u0032024-03-02T10:00:00Z"}',
        ('{"records":[{%s}],%s}' % (time, time)).encode(),  # a plain row: it has a TimeGenerated
        b'{"a":"x' + b'y' * 2000 + b'",' + time.encode() + b'}',
        b'{"TimeGenerated":"9999-12-31T23:59:59.9999999Z"}', b'{"TimeGenerated":"0001-01-01T00:00:00Z"}',
        b'{"TimeGenerated":"2024-02-29T23:59:59Z","TimeGenerated":"2024-03-01T00:00:00Z"}',
    ]


def relevant_line(rnd, table):
    return json.dumps(dict(RELEVANT[table], TimeGenerated=_time(rnd))).encode('utf-8')


def mixed_file(seed, table, extra_lines=()):
    rnd = random.Random(seed)
    hostile = hostile_lines(table) + valid_lines()
    lines = []
    for _ in range(rnd.randrange(1, 400)):
        kind = rnd.random()
        if kind < 0.03:
            lines.append(rnd.choice(hostile))
        elif kind < 0.06:
            lines.append(relevant_line(rnd, table))
        else:
            lines.append(clean_line(rnd, table))
    lines.extend(extra_lines)
    rnd.shuffle(lines) if extra_lines else None
    return b'\n'.join(lines) + (b'\n' if rnd.random() < 0.8 else b'')


def read_source(source, path, start=0, stop=None, split_after=None, split_gap=1):
    """(items, residual) of `source.read_records` over [start, stop) of `path`; `split_after`: after
    that many outputs, split the range dynamically at the tracker's last claimed position +
    `split_gap` (residual: where the split range starts, or None)."""
    size = os.path.getsize(path)
    tracker = OffsetRangeTracker(start, size if stop is None else stop)
    items, residual = [], None
    for number, item in enumerate(source.read_records(path, tracker)):
        items.append(item)
        if split_after is not None and number == split_after and residual is None:
            at = tracker.last_record_start + split_gap
            if tracker.try_split(at):
                residual = at
    return items, residual


def read(path, table, semantics, windows, full_native, start=0, stop=None, split_after=None, block_bytes=None,
         split_gap=1):
    """(items, residual) of ExportSource.read_records over [start, stop) (`read_source`), with
    validate_skipped (native) or without needles (the reference)."""
    needles, keep = read_filters(table, semantics, 'full')
    source = ExportSource(path, table, 'auto', needles if full_native else None, keep, windows,
                          validate_skipped=full_native)
    if block_bytes:
        source.block_bytes = block_bytes
    return read_source(source, path, start, stop, split_after, split_gap)


def read_three_ways(read_range, size, split_at, split_after):
    """The summarized outputs of reading a file of `size` bytes whole, in two ranges split at
    `split_at`, and split dynamically after `split_after` outputs; ``read_range(start, stop,
    split_after)`` returns (items, residual) as `read_source` does."""
    whole = summarize(read_range(0, None, None)[0])
    at = min(split_at, size)
    halves = summarize(read_range(0, at, None)[0] + read_range(at, None, None)[0])
    primary, residual = read_range(0, None, split_after)
    if residual is not None:
        primary += read_range(residual, None, None)[0]
    return whole, halves, summarize(primary)


def summarize(items):
    rows, dead, counts = [], [], {'read': 0, 'skipped_irrelevant': 0, 'parsed': 0, 'outside_range': 0, 'windows': {}}
    for kind, value in items:
        if kind == ROWS:
            rows.extend(json.dumps([labels, row], sort_keys=True, default=str) for labels, row in value)
        elif kind == DEAD_LETTER:
            dead.append(json.dumps(value, sort_keys=True))
        else:
            assert kind == STATS
            for name in ('read', 'skipped_irrelevant', 'parsed', 'outside_range'):
                counts[name] += value[name]
            for label, rows_in in value['windows'].items():
                counts['windows'][label] = counts['windows'].get(label, 0) + rows_in
    return sorted(rows), sorted(dead), counts


def check_file(path, table, semantics, windows, split_at, split_after, block_bytes=None, split_gap=1):
    reference = summarize(read(path, table, semantics, windows, False)[0])
    assert reference[2]['skipped_irrelevant'] == 0

    def native(start, stop, split_after):
        return read(path, table, semantics, windows, True, start, stop, split_after, block_bytes, split_gap)
    assert read_three_ways(native, os.path.getsize(path), split_at, split_after) == (reference,) * 3
    return reference


@pytest.fixture(autouse=True, params=['blockscan', 'msgspec'])
def native_path(request, monkeypatch):
    """Every test runs with each native path of the read step: the compiled one-pass scanner
    (`transforms.read.blockscan`) and the msgspec validator it replaces where it is built."""
    if request.param == 'msgspec':
        monkeypatch.setattr(blockscan, '_blockscan', None)
    elif not blockscan.available():
        pytest.skip('the compiled scanner is not built')
    return request.param


class _Taken:
    """Counts the lines the native path took (to check that the tests exercise it)."""

    def __init__(self, monkeypatch):
        self.lines = self.typed = 0
        call = bulk.BulkValidator.__call__
        scan_block = blockscan.BlockScanner.scan_block
        typer = ingest.NativeTyper.__call__

        def typed(native_typer, line):  # the candidate rows the compiled typing typed
            row = typer(native_typer, line)
            self.typed += row is not None
            return row
        monkeypatch.setattr(ingest.NativeTyper, '__call__', typed)

        def counted(validator, text):
            result = call(validator, text)
            if result is not None:
                self.lines += result[0]  # every line of a block taken is parsed
            return result

        def scanned(scanner, block, end=None):
            result = scan_block(scanner, block, end)
            if result is not None:
                self.lines += result[2][0]
            return result
        monkeypatch.setattr(bulk.BulkValidator, '__call__', counted)
        monkeypatch.setattr(blockscan.BlockScanner, 'scan_block', scanned)


@settings(max_examples=int(os.environ.get('BULK_EXAMPLES', '40')), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 32 - 1), table=st.sampled_from([AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS]),
       strict=st.booleans(), windows=st.sampled_from(sorted(WINDOWS)), split_at=st.integers(0, 200_000),
       split_after=st.integers(0, 30), block_bytes=st.sampled_from([300, 2000, 8192, None]),
       split_gap=st.sampled_from([1, 150, 1500]))
def test_native_validation_gives_what_the_per_line_reader_gives(tmp_path_factory, seed, table, strict, windows,
                                                                  split_at, split_after, block_bytes, split_gap):
    path = str(tmp_path_factory.mktemp('bulk') / (table + '.jsonl'))
    with open(path, 'wb') as handle:
        handle.write(mixed_file(seed, table))
    check_file(path, table, STRICT if strict else SENTINEL, WINDOWS[windows], split_at, split_after, block_bytes,
               split_gap)


def test_a_dynamic_split_inside_a_block_the_scanner_takes_leaves_its_lines_to_the_per_line_reader(
        tmp_path, monkeypatch, native_path):
    """A split that falls inside a block before the block is read (its last line cannot be claimed):
    the block's lines before the split are read one by one by the per-line reader, the others by the
    next range, with the reference's outputs."""
    rnd = random.Random(3)
    path = str(tmp_path / 'DeviceEvents.jsonl')
    lines = [clean_line(rnd, DEVICE_EVENTS) for _ in range(200)]
    lines[5] = b'{"broken'  # a dead letter: the first output, while the range is read
    lines[100:100] = [relevant_line(rnd, DEVICE_EVENTS) for _ in range(4)]
    with open(path, 'wb') as handle:
        handle.write(b'\n'.join(lines) + b'\n')
    one_by_one = []
    after_failed_claim = LineReader._after_failed_claim

    def counted(reader, *args):
        for line in after_failed_claim(reader, *args):
            one_by_one.append(line)
            yield line
    monkeypatch.setattr(LineReader, '_after_failed_claim', counted)
    # After the dead letter, the range is split blocks ahead, among the relevant lines.
    gap = sum(len(line) + 1 for line in lines[5:102]) + 10
    reference = summarize(read(path, DEVICE_EVENTS, SENTINEL, WINDOWS['daily'], False)[0])
    items, residual = read(path, DEVICE_EVENTS, SENTINEL, WINDOWS['daily'], True, split_after=0, block_bytes=4096,
                           split_gap=gap)
    assert residual is not None
    items += read(path, DEVICE_EVENTS, SENTINEL, WINDOWS['daily'], True, start=residual, block_bytes=4096)[0]
    assert summarize(items) == reference
    assert reference[0] and reference[1]
    assert (len(one_by_one) > 0) == (native_path == 'blockscan')


@pytest.mark.parametrize('windows', sorted(WINDOWS))
def test_native_validation_takes_most_lines_of_a_mixed_file(tmp_path, monkeypatch, native_path, windows):
    taken = _Taken(monkeypatch)
    path = str(tmp_path / 'DeviceEvents.jsonl')
    with open(path, 'wb') as handle:
        handle.write(b''.join(mixed_file(seed, DEVICE_EVENTS) for seed in range(5)))
    reference = check_file(path, DEVICE_EVENTS, SENTINEL, WINDOWS[windows], 5000, 10, block_bytes=4096)
    assert reference[1] and reference[0]  # dead letters and relevant rows among them
    assert taken.lines > reference[2]['read'] // 2
    # With the scanner, the relevant rows it vouches for are typed by the compiled typing.
    assert (taken.typed > 0) == (native_path == 'blockscan')


@settings(max_examples=int(os.environ.get('BULK_EXAMPLES', '25')), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), table=st.sampled_from([AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS]),
       strict=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_native_validation_of_the_prefilter_property_files(tmp_path_factory, data, table, strict, seed):
    """The prefilter's random files (case variants, Unicode look-alikes, escapes, duplicate keys,
    CRLF, cut lines) among clean lines: the same outputs with and without the native path."""
    extra = data.draw(export_lines(table))
    path = str(tmp_path_factory.mktemp('bulk') / (table + '.jsonl'))
    with open(path, 'wb') as handle:
        handle.write(mixed_file(seed, table, extra))
    check_file(path, table, STRICT if strict else SENTINEL, WINDOWS['daily'], 1000, 3, block_bytes=1024)


@pytest.mark.parametrize('table', [AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS])
def test_every_hostile_line_is_handed_back_and_clean_blocks_are_taken(table):
    rnd = random.Random(7)
    validator = bulk.BulkValidator(WINDOWS['daily'])
    clean = [clean_line(rnd, table) for _ in range(50)]
    text = b'\n'.join(clean) + b'\n'
    result = validator(text)
    assert result is not None and result[0] == 50 and sum(result[2].values()) == 50 - result[1]
    for line in valid_lines():
        block = b'\n'.join(clean[:10] + [line] + clean[10:]) + b'\n'
        assert validator(block)[0] == 51, line[:80]
    for line in hostile_lines(table):
        block = b'\n'.join(clean[:10] + [line] + clean[10:]) + b'\n'
        assert validator(block) is None, line[:80]


def test_counts_per_window_equal_the_rows_windows():
    windows = WINDOWS['sliding-minutes']
    texts = ['2024-03-01T00:06:59.9999999Z', '2024-03-01T00:07:00Z', '2024-03-01T00:37:00.5Z', '2024-03-01T01:59:00Z']
    text = ''.join('{"TimeGenerated":"%s"}\n' % t for t in texts).encode()
    parsed, outside, per_window = bulk.BulkValidator(windows)(text)
    expected = {}
    for t in texts:
        for label in windows.windows_in_range(parse_datetime_us(t)):
            expected[label] = expected.get(label, 0) + 1
    assert (parsed, outside, per_window) == (4, 0, expected)


def test_without_msgspec_every_record_is_read_by_the_per_line_reader(tmp_path, monkeypatch):
    path = str(tmp_path / 'DeviceEvents.jsonl')
    with open(path, 'wb') as handle:
        handle.write(mixed_file(3, DEVICE_EVENTS))
    reference = summarize(read(path, DEVICE_EVENTS, SENTINEL, WINDOWS['daily'], False)[0])
    monkeypatch.setattr(bulk, 'msgspec', None)
    assert not bulk.available()
    assert summarize(read(path, DEVICE_EVENTS, SENTINEL, WINDOWS['daily'], True)[0]) == reference


def test_rows_are_grouped_by_the_longest_unit_every_window_boundary_falls_on():
    lengths = {name: (bulk._prefix(windows) or (None,))[0] for name, windows in WINDOWS.items()}  # pylint: disable=protected-access
    assert lengths == {'daily': 13, 'daily-range': 13, 'sliding-minutes': 16, 'seconds': 19, 'odd': None,
                       'margin': None, 'hours': 13}


def _expected_counts(texts, windows):
    """What the per-line reader counts for plain rows with these TimeGenerated texts, or None when
    any of them is not a datetime the row types (the reader then dead-letters it)."""
    per_window, outside = {}, 0
    for text in texts:
        micros = parse_datetime_us(text)
        if micros is None:
            return None
        labels = windows.windows_in_range(micros)
        outside += not labels
        for label in labels:
            per_window[label] = per_window.get(label, 0) + 1
    return len(texts), outside, per_window


_MUTATIONS = ['', '', '', '', 'hour24', 'minute60', 'second60', 'digit', 'letter', 'length', 'offset', 'day31']


def _mutated(text, mutation):
    if mutation == 'hour24':
        return text[:11] + '24' + text[13:]
    if mutation == 'minute60':
        return text[:14] + '60' + text[16:]
    if mutation == 'second60':
        return text[:17] + '6' + text[18:]
    if mutation == 'digit':
        return text[:15] + '\uff15' + text[16:]  # FULLWIDTH DIGIT FIVE
    if mutation == 'letter':
        return text[:20] + 'x' + text[21:]
    if mutation == 'length':
        return text[:-2] + 'Z'
    if mutation == 'offset':
        return text[:-1] + '+00:00'
    if mutation == 'day31':
        return text[:5] + '04-31' + text[10:]
    return text


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 60), windows=st.sampled_from(sorted(WINDOWS)),
       mutation=st.sampled_from(_MUTATIONS), fraction=st.sampled_from([7, 3, 0, -1]))
def test_blocks_of_one_shape_count_as_each_value_parsed(seed, size, windows, mutation, fraction):
    """Blocks of canonical times of one shape (the fast check), with at most one value broken in one
    place: the validator's counts are those of each value parsed, or it hands the block back."""
    rnd = random.Random(seed)
    start = rnd.randrange(1709251200000000 - DAY, 1709251200000000 + 3 * DAY)
    spread = rnd.choice([1_000_000, 60 * MINUTE, 2 * DAY])
    texts = []
    for _ in range(size):
        full = format_datetime_us(start + rnd.randrange(spread))[:-1] + '7Z'  # 7 fractional digits
        texts.append(full[:19] + ('.' + full[20:20 + fraction] if fraction >= 0 else '') + 'Z')
    texts.sort()
    if mutation:
        index = rnd.randrange(size)
        texts[index] = _mutated(texts[index], mutation)
    block = ''.join(json.dumps({'TimeGenerated': text, 'a': 1}, ensure_ascii=False) + '\n' for text in texts)
    result = bulk.BulkValidator(WINDOWS[windows])(block.encode('utf-8'))
    expected = _expected_counts(texts, WINDOWS[windows])
    if expected is None:
        assert result is None
    elif result is not None:
        assert result == expected
    if not mutation:
        assert result == expected  # a clean block is always taken


def test_the_validator_pickles_and_counts_the_same_after():
    import pickle  # pylint: disable=import-outside-toplevel
    validator = bulk.BulkValidator(WINDOWS['sliding-minutes'])
    text = ''.join('{"TimeGenerated":"2024-03-01T0%d:10:00Z"}\n' % hour for hour in range(5)).encode()
    before = validator(text)
    copy = pickle.loads(pickle.dumps(validator))
    assert before is not None and copy(text) == before


def test_a_block_without_the_tables_first_key_column_goes_to_the_per_line_reader():
    # Another table's rows (a DeviceEvents export given as AzureActivity): the per-line reader makes
    # them dead letters of their own, so the validator must not count them as parsed.
    rnd = random.Random(7)
    lines = [clean_line(rnd, DEVICE_EVENTS) for _ in range(20)]
    text = b'\n'.join(lines) + b'\n'
    assert bulk.BulkValidator(WINDOWS['daily'])(text) is not None
    assert bulk.BulkValidator(WINDOWS['daily'], KEY_COLUMNS[AZURE_ACTIVITY])(text) is None
    assert bulk.BulkValidator(WINDOWS['daily'], KEY_COLUMNS[DEVICE_EVENTS])(text) is not None


def test_another_tables_export_gives_the_same_dead_letters_with_native_validation(tmp_path):
    rnd = random.Random(11)
    path = tmp_path / 'DeviceEvents-as-AzureActivity.jsonl'
    path.write_bytes(b'\n'.join(clean_line(rnd, DEVICE_EVENTS) for _ in range(300)) + b'\n')
    reference = check_file(str(path), AZURE_ACTIVITY, SENTINEL, WINDOWS['daily'], 5000, 17)
    assert len(reference[1]) == 300 and reference[2]['parsed'] == 0


@pytest.mark.parametrize('block_bytes', [2000, 8192, None])
def test_a_candidate_dead_letter_among_lines_taken_natively_has_its_line_number(tmp_path, monkeypatch, block_bytes):
    # Candidate lines of a block whose other lines the validator takes are numbered only when one
    # becomes a dead letter: its number must be the per-line reader's.
    taken = _Taken(monkeypatch)
    rnd = random.Random(5)
    lines = [clean_line(rnd, AZURE_ACTIVITY) for _ in range(120)]
    lines[56] = b'{"OperationNameValue":"RunCommand",'  # a candidate (the prefilter's literal), not JSON
    lines[90] = relevant_line(rnd, AZURE_ACTIVITY)
    path = tmp_path / 'AzureActivity.jsonl'
    path.write_bytes(b'\n'.join(lines) + b'\n')
    reference = check_file(str(path), AZURE_ACTIVITY, SENTINEL, WINDOWS['daily'], 40_000, 3, block_bytes)
    assert [json.loads(dead)['line'] for dead in reference[1]] == [57]
    assert taken.lines > 100


@pytest.mark.parametrize('block_bytes', [None, 1 << 20])
def test_a_line_longer_than_the_record_limit_is_a_dead_letter_with_native_validation(tmp_path, block_bytes):
    # A clean row over MAX_RECORD_BYTES that a block holds whole (after a partial line, or in a
    # large block) is the per-line reader's dead letter, not a row the native path counts.
    from transforms.read.formats.lines import MAX_RECORD_BYTES  # pylint: disable=import-outside-toplevel
    rnd = random.Random(1)
    lines = [clean_line(rnd, AZURE_ACTIVITY) for _ in range(50)]
    row = json.loads(lines[10])
    row['Note'] = 'x' * (MAX_RECORD_BYTES + 100_000)
    lines[10] = json.dumps(row).encode()
    path = tmp_path / 'AzureActivity.jsonl'
    path.write_bytes(b'\n'.join(lines) + b'\n')
    reference = check_file(str(path), AZURE_ACTIVITY, SENTINEL, WINDOWS['daily'], 3 << 20, 2, block_bytes)
    assert [json.loads(dead)['line'] for dead in reference[1]] == [11] and reference[2]['parsed'] == 49
