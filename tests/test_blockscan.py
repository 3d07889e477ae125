"""The compiled one-pass block scanner (transforms/read/blockscan.py, _blockscan.c) against its references.

* its candidate lines are exactly the prefilter's (`LineReader` with `LiteralNeedles`), on the
  prefilter's random export files (case variants, Unicode look-alikes, escapes, cut lines);
* a line it accepts is one Python's JSON decoder reads as an object with the same TimeGenerated,
  and that the msgspec validator accepts with the same counts: on valid rows and on mutations of
  them (bytes flipped, inserted, deleted), and it refuses every hostile line;
* nothing an attacker writes makes it crash or take more than linear time.

The read step's outputs with the scanner equal the per-line reader's in tests/test_bulk.py.
"""

import io
import json
import pickle
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.detect.relevance import read_filters
from transforms.read import blockscan, bulk
from transforms.read.bounded_json import MAX_JSON_DEPTH
from transforms.read.formats.records import decode_object
from transforms.read.formats.lines import LineReader
from transforms.read.prefilter import LiteralNeedles
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS, KEY_COLUMNS

from tests.test_bulk import (SENTINEL, STRICT, WINDOWS, clean_line, hostile_lines, read, read_source, read_three_ways,
                              relevant_line, summarize, valid_lines)
from tests.test_prefilter import export_lines

TABLES = [AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS]


def test_the_compiled_scanner_is_built():
    # The project's installation compiles it (setup.py); where a machine cannot, the reader falls
    # back, but the machine that runs these tests must exercise it.
    assert blockscan.available()


pytestmark = pytest.mark.skipif(not blockscan.available(), reason='the compiled scanner is not built')


def _needles(table, strict):
    return read_filters(table, STRICT if strict else SENTINEL, 'full')[0]


def _prefilter_candidates(needles, block):
    reader = LineReader(io.BytesIO(b''), 0, None, needles)
    spans = list(reader._matching_lines(block))  # pylint: disable=protected-access
    return spans, reader._block_lines  # pylint: disable=protected-access


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), table=st.sampled_from(TABLES), strict=st.booleans())
def test_candidates_are_the_prefilters(data, table, strict):
    needles = _needles(table, strict)
    specs = blockscan.needle_specs(needles)
    assert specs is not None
    lines = data.draw(export_lines(table))
    rnd = random.Random(data.draw(st.integers(0, 2 ** 32 - 1)))
    lines += [clean_line(rnd, table) for _ in range(rnd.randrange(3))] + [relevant_line(rnd, table)]
    rnd.shuffle(lines)
    block = b'\n'.join(lines) + b'\n'
    assert blockscan.candidate_lines(specs, block) == _prefilter_candidates(needles, block)


@pytest.mark.parametrize('table', TABLES)
@pytest.mark.parametrize('strict', [False, True])
def test_a_scanned_block_gives_the_candidates_and_counts_of_the_python_path(table, strict):
    rnd = random.Random(3)
    needles = _needles(table, strict)
    lines = [clean_line(rnd, table) for _ in range(300)] + [relevant_line(rnd, table) for _ in range(20)]
    rnd.shuffle(lines)
    block = b'\n'.join(lines) + b'\n'
    for name, windows in WINDOWS.items():
        scanner = blockscan.BlockScanner(blockscan.needle_specs(needles), windows, KEY_COLUMNS[table])
        candidates, count, result, plain = scanner.scan_block(block)
        spans, python_count = _prefilter_candidates(needles, block)
        assert (candidates, count) == (spans, python_count) and len(spans) >= 20, name
        assert len(plain) == len(spans) and all(plain), name  # generated rows: every candidate vouched for
        indexes = {index for index, _, _ in spans}
        others = b''.join(line + b'\n' for index, line in enumerate(block.split(b'\n')[:-1]) if index not in indexes)
        assert result == bulk.BulkValidator(windows, KEY_COLUMNS[table])(others), name
        assert result[0] == count - len(spans)


def _with_value(line, key, value):
    """`line` (a JSON object's text) with `key` set to the JSON text `value`, as raw bytes."""
    return line[:-1] + b',"%s":%s}' % (key, value)


# The escape needle's bytes in the places a validated row can hold them: a \u00XX escape, an escaped
# backslash then "u00", in a value, in a nested key, in an array; lines where they are not (other
# escapes, "u00" without a backslash); and two lines that are no plain rows (a short \u escape, a
# row key spelled with an escape).
_ESCAPE_PLACES = [(b'Note', b'"a\\u0041b"', True), (b'Note', b'"C:\\\\u00ff"', True),
                  (b'Note', b'"\\\\\\u0041"', True), (b'Note', b'{"k\\u0042":1}', True),
                  (b'Note', b'["x","\\u00e9"]', True), (b'Note', b'"\\\\\\\\u00"', True),
                  (b'Note', b'"\\u0100\\\\u01"', False), (b'Note', b'"u00\\\\"', False),
                  (b'Note', b'"\\u00"', True), (b'No\\u0074e', b'1', True)]


@pytest.mark.parametrize('table', TABLES)
@pytest.mark.parametrize('key,value,found', _ESCAPE_PLACES)
def test_the_escape_needle_is_found_wherever_the_prefilter_finds_it(table, key, value, found):
    rnd = random.Random(11)
    needles = _needles(table, False)
    assert b'\\u00' in needles.exact  # the needle these lines hold, or not
    lines = [clean_line(rnd, table) for _ in range(5)]
    lines[2] = _with_value(lines[2], key, value)
    block = b'\n'.join(lines) + b'\n'
    spans, count = _prefilter_candidates(needles, block)
    assert (2 in {index for index, _, _ in spans}) is found
    scanner = blockscan.BlockScanner(blockscan.needle_specs(needles), WINDOWS['daily'], KEY_COLUMNS[table])
    scanned = scanner.scan_block(block)
    if scanned is None:  # a line the scanner cannot vouch for, and no candidate: the per-line reader's block
        assert not found
    else:
        assert scanned[:2] == (spans, count)


@pytest.mark.parametrize('table', TABLES)
def test_a_candidate_is_vouched_for_as_the_scanner_vouches_for_any_line(table):
    """The byte the scanner gives each candidate: 1 exactly when it would take the same line as one of
    the lines it validates, and the line holds at most MAX_JSON_DEPTH brackets (what the reader's
    decoder takes natively); the reader then decodes such a line to what its own checks decode."""
    rnd = random.Random(5)
    lines = ([clean_line(rnd, table) for _ in range(20)] + [relevant_line(rnd, table) for _ in range(20)]
             + [line for line in hostile_lines(table) + valid_lines() if b'\n' not in line and b'{' in line])
    many_brackets = json.dumps(dict(json.loads(relevant_line(rnd, table)), Note='[' * MAX_JSON_DEPTH)).encode()
    lines.append(many_brackets)  # a row the scanner takes, whose text the reader's own decoder must decide
    block = b''.join(line + b'\n' for line in lines)
    # Every line holds a b'{': every line is a candidate.
    scanner = blockscan.BlockScanner(blockscan.needle_specs(LiteralNeedles(exact=[b'{'])), WINDOWS['odd'],
                                     KEY_COLUMNS[table])
    candidates, _, _, plain = scanner.scan_block(block)
    assert len(plain) == len(candidates) == len(lines)
    vouched = 0
    for (_, start, end), flag in zip(candidates, plain):
        line = block[start:end]
        alone = _scan_one(line, KEY_COLUMNS[table])
        brackets = line.count(b'[') + line.count(b'{')
        assert bool(flag) == (alone is not None and brackets <= MAX_JSON_DEPTH), line[:80]
        assert line != many_brackets or (alone is not None and not flag)
        if flag:
            vouched += 1
            value, reason = decode_object(line)
            assert reason is None and value == msgspec.json.decode(line)
            assert 'TimeGenerated' in value and not {'properties', 'Type', '$table'} & set(value)
    assert 40 <= vouched < len(candidates)


def _scan_one(line, key_columns=()):
    scanner = blockscan.BlockScanner(blockscan.needle_specs(LiteralNeedles(exact=[b'\x00\x01'])),
                                     WINDOWS['odd'], key_columns)
    return scanner.scan_block(line + b'\n')


@pytest.mark.parametrize('table', TABLES)
def test_every_hostile_line_is_refused(table):
    for line in hostile_lines(table):
        if line.startswith(b'{"a":"[[['):
            continue  # brackets in a string: too many for the msgspec path's count, a valid row here
        assert _scan_one(line) is None, line[:80]
    row = b'{"TimeGenerated":"2024-03-02T10:00:00Z"'
    for rest in (b',"a":01}', b',}', b',"a":[1,]}', b' "a":1}', b',"a":"\x01"}', b',"a":tru}', b',"a":1.}',
                 b',"a":.5}', b',"a":"\\x"}', b',"a":"\\u12"}', b',"a":"\xc0\x80"}', b',"a":"\xf4\x90\x80\x80"}',
                 b',"TimeGenerated":"2024-03-02T10:00:00Z"}', b',"a":1' + b'0' * 5000 + b'}', b',"a":{"b":1]}', b']'):
        line = row + rest
        assert _scan_one(line) is None, line[:80]


def test_a_line_without_any_key_column_is_refused():
    line = b'{"TimeGenerated":"2024-03-02T10:00:00Z","Other":1}'
    assert _scan_one(line) is not None
    assert _scan_one(line, KEY_COLUMNS[DEVICE_EVENTS]) is None
    assert _scan_one(line[:-1] + b',"AdditionalFields":null}', KEY_COLUMNS[DEVICE_EVENTS]) is not None
    nested_only = b'{"x":{"DeviceName":1},"TimeGenerated":"2024-03-02T10:00:00Z"}'
    assert _scan_one(nested_only, KEY_COLUMNS[DEVICE_EVENTS]) is None


def _per_line_reader(tmp_path, table, line):
    """(rows, dead letters, counts) of the per-line reader (the reference) over a file of `line`."""
    path = tmp_path / (table + '.jsonl')
    path.write_bytes(line + b'\n')
    return summarize(read(str(path), table, SENTINEL, WINDOWS['odd'], False)[0])


def _check_accepted_line(tmp_path, table, line):
    """Whether the scanner accepts `line`; if so, the per-line reader must read it as a valid row
    with the same counts, and so must the msgspec validator unless the line holds more brackets
    than it counts."""
    scanned = _scan_one(line, KEY_COLUMNS[table])
    if scanned is None:
        return False
    rows, dead, counts = _per_line_reader(tmp_path, table, line)
    assert not dead, line[:200]
    assert scanned[2] == (counts['parsed'], counts['outside_range'], counts['windows']), line[:200]
    msgspec_path = bulk.BulkValidator(WINDOWS['odd'], KEY_COLUMNS[table])(line + b'\n')
    assert msgspec_path == scanned[2] or line.count(b'[') + line.count(b'{') > 64, line[:200]
    return True


def _with_key_column(table, line):
    return line if b'"%s"' % KEY_COLUMNS[table][0].encode() in line else (
        b'{"%s":"x",' % KEY_COLUMNS[table][-1].encode() + line[1:])


def test_valid_lines_are_taken_as_the_per_line_reader_takes_them(tmp_path):
    rnd = random.Random(1)
    for table in TABLES:
        refused = [line for line in valid_lines()
                   if not _check_accepted_line(tmp_path, table, _with_key_column(table, line))]
        # What the scanner leaves to the reader: a number longer than it reads, TimeGenerated
        # spelled with escapes (its key or its text) or given twice.
        assert [line[:30] for line in refused] == [
            b'{"a":1' + b'0' * 24, b'{"TimeGenerated":"2024-03-02T1', b'{"TimeGenerated":"\\u0032024-03',
            b'{"TimeGenerated":"2024-02-29T2']
    assert all(_check_accepted_line(tmp_path, table, clean_line(rnd, table)) for table in TABLES for _ in range(30))


_EDIT_BYTES = list(b'{}[]",:\\-.0123456789eEtrufalsn u\x00\x1f\x7f\x80\xbf\xc3\xed\xf0\xff')
_EDITS = st.lists(st.tuples(st.sampled_from(['flip', 'insert', 'delete']), st.integers(0, 10 ** 6),
                            st.sampled_from(_EDIT_BYTES)), min_size=1, max_size=3)


def _mutated(line, edits):
    """`line` with `edits` applied ((kind, where, byte): a byte flipped, inserted or deleted), one line."""
    line = bytearray(line)
    for kind, where, byte in edits:
        where %= len(line) + (kind == 'insert')
        if kind == 'flip' and where < len(line):
            line[where] = byte
        elif kind == 'insert':
            line[where:where] = bytes([byte])
        elif where < len(line):
            del line[where]
    return bytes(line).replace(b'\n', b' ')


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 32 - 1), table=st.sampled_from(TABLES), edits=_EDITS)
def test_a_mutated_line_is_accepted_only_if_the_per_line_reader_reads_it_so(tmp_path_factory, seed, table, edits):
    rnd = random.Random(seed)
    line = _with_key_column(table, rnd.choice([clean_line(rnd, table)] + valid_lines()))
    _check_accepted_line(tmp_path_factory.mktemp('line'), table, _mutated(line, edits))


def _scanners(table):
    """A scanner that finds no candidate, and one whose every line is a candidate (each told plain or not)."""
    return [blockscan.BlockScanner(blockscan.needle_specs(LiteralNeedles(exact=[needle])), WINDOWS['odd'],
                                   KEY_COLUMNS[table]) for needle in (b'\x00\x01', b'{')]


def _scan_alone_and_after(table, before, line):
    """For each scanner: (the block of `line` scanned alone, `before` and `line` scanned as one block,
    `before` alone). The scanner reads a line's keys faster when they are spelled as in the lines before
    it in the block; what it answers must not depend on them."""
    return [(scanner.scan_block(line + b'\n'), scanner.scan_block(before + b'\n' + line + b'\n'),
             scanner.scan_block(before + b'\n')) for scanner in _scanners(table)]


def _check_same_after(table, before, line):
    """Asserts that `line` scans the same after `before` (an accepted line) as alone; whether it was accepted."""
    results = _scan_alone_and_after(table, before, line)
    for alone, after, first in results:
        assert first is not None, before[:200]
        if alone is None:
            assert after is None, line[:200]
            continue
        assert after is not None, line[:200]
        candidates, lines, (taken, outside, windows), plain = after
        assert lines == 2 and len(candidates) == len(first[0]) + len(alone[0])
        assert plain == first[3] + alone[3], line[:200]
        merged = dict(first[2][2])
        for label, rows in alone[2][2].items():
            merged[label] = merged.get(label, 0) + rows
        assert (taken, outside, windows) == (first[2][0] + alone[2][0], first[2][1] + alone[2][1], merged)
    return results[0][0] is not None


_TIME = b'"TimeGenerated":"2024-03-02T10:00:00Z"'


@pytest.mark.parametrize('before, line, accepted', [
    # the same keys, other values
    (b'{"DeviceName":"a",%s,"b":{"c":1}}' % _TIME, b'{"DeviceName":"zz",%s,"b":{"c":[2]}}' % _TIME, True),
    # TimeGenerated twice, the second where the line before held another key
    (b'{"DeviceName":"a",%s,"b":1}' % _TIME, b'{"DeviceName":"a",%s,%s}' % (_TIME, _TIME.replace(b'T', b'b', 1)), True),
    (b'{"DeviceName":"a",%s,"b":1}' % _TIME, b'{"DeviceName":"a",%s,%s}' % (_TIME, _TIME), False),
    (b'{"DeviceName":"a","b":1,%s}' % _TIME, b'{"DeviceName":"a",%s,%s}' % (_TIME, _TIME), False),
    # a key whose spelling starts with the key before it at its place
    (b'{"DeviceName":"a",%s}' % _TIME, b'{"DeviceNames":"a",%s}' % _TIME, False),
    (b'{"DeviceNam":"a",%s,"DeviceName":1}' % _TIME, b'{"DeviceName":"a",%s}' % _TIME, True),
    # the table's key column at the place it had, one level down
    (b'{"DeviceName":"a",%s}' % _TIME, b'{"x":{"DeviceName":"a"},%s}' % _TIME, False),
    (b'{"x":{"DeviceName":"a"},%s,"ActionType":1}' % _TIME, b'{"DeviceName":"a",%s}' % _TIME, True),
    (b'{"x":{"y":"a"},"DeviceName":1,%s}' % _TIME, b'{"x":{"DeviceName":"a"},"y":1,%s}' % _TIME, False),
    # TimeGenerated at its place, one level down, and the row's own elsewhere
    (b'{%s,"DeviceName":1}' % _TIME, b'{"x":{%s},"DeviceName":1}' % _TIME, False),
    (b'{"a":{%s},"DeviceName":1,%s}' % (_TIME, _TIME), b'{"a":1,"DeviceName":1,%s}' % _TIME, True),
    # keys the scanner never takes, where the line before held others
    (b'{"DeviceName":"a",%s,"b":1}' % _TIME, b'{"DeviceName":"a",%s,"Type":1}' % _TIME, False),
    (b'{"DeviceName":"a",%s,"b":1}' % _TIME, b'{"DeviceName":"a",%s,"b\\u0031":1}' % _TIME, False),
    # spacing around the colon, before and after
    (b'{"DeviceName" :"a",%s}' % _TIME, b'{"DeviceName":"a",%s}' % _TIME, True),
    (b'{"DeviceName":"a",%s}' % _TIME, b'{"DeviceName" : "a",%s}' % _TIME, True),
    (b'{"DeviceName":"a",%s}' % _TIME, b'{"DeviceName":', False),
    (b'{"DeviceName":"a",%s}' % _TIME, b'{"DeviceName":"a",%s} ' % _TIME, False),
    (b'{"DeviceName":"a",%s}' % _TIME, b'{"DeviceName":"a",%s}{}' % _TIME, False),
])
def test_a_line_scans_the_same_after_lines_with_its_keys(before, line, accepted):
    assert _check_same_after(DEVICE_EVENTS, before, line) is accepted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), table=st.sampled_from(TABLES), edits=_EDITS)
def test_a_mutated_line_scans_the_same_after_the_line_it_was(seed, table, edits):
    before = clean_line(random.Random(seed), table)
    _check_same_after(table, before, _mutated(before, edits))


@pytest.mark.parametrize('line', [
    b'{"a":' + b'[' * 200_000 + b'}', b'{"a":"' + b'x' * 3_000_000, b'{"a":"' + b'\\' * 1_000_001 + b'"}',
    b'{"TimeGenerated":"2024-03-02T10:00:00Z","a":' + b'{"b":' * 100_000, b'{' * 500_000,
    b'{"a":' + b'1' * 2_000_000 + b'}', b'{"' + b'\xf0\x9f\x98\x80' * 500_000 + b'":1}'])
def test_hostile_lines_end_quickly_and_are_refused(line):
    assert _scan_one(line) is None


def _device_events_block(seed, clean):
    """(a DeviceEvents scanner, a block of `clean` clean lines then one relevant line, the lines)."""
    scanner = blockscan.BlockScanner(blockscan.needle_specs(_needles(DEVICE_EVENTS, False)), WINDOWS['hours'],
                                     KEY_COLUMNS[DEVICE_EVENTS])
    rnd = random.Random(seed)
    lines = [clean_line(rnd, DEVICE_EVENTS) for _ in range(clean)] + [relevant_line(rnd, DEVICE_EVENTS)]
    return scanner, b''.join(line + b'\n' for line in lines), lines


def test_the_scanner_pickles():
    scanner, block, _ = _device_events_block(2, 40)
    before = scanner.scan_block(block)
    assert before is not None and before[0] and before[2][0] == 41 - len(before[0])
    assert before[0][-1][0] == 40  # the relevant line, the block's last: its index
    assert pickle.loads(pickle.dumps(scanner)).scan_block(block) == before


def test_a_block_is_scanned_up_to_end_and_not_past_it():
    # The line reader hands the scanner a block with the start of the next block's first line after
    # `end`: the result is the one for the bytes before `end`, whatever follows them.
    scanner, block, lines = _device_events_block(3, 30)
    whole = scanner.scan_block(block)
    assert whole is not None and whole[0]
    for tail in (b'{"TimeGenerated":', b'x', b'\xff\xfe', lines[-1][:-5]):
        assert scanner.scan_block(block + tail, len(block)) == whole
    # a cut inside the block reads only the lines before it
    cut = sum(len(line) + 1 for line in lines[:10])
    assert scanner.scan_block(block, cut) == scanner.scan_block(block[:cut])
    assert scanner.scan_block(block, cut)[2][0] == 10
    with pytest.raises(ValueError):
        scanner.scan_block(block, len(block) + 1)


def test_the_line_reader_scans_each_block_in_place_and_reads_its_unfinished_line_again():
    rnd = random.Random(4)
    lines = [clean_line(rnd, DEVICE_EVENTS) for _ in range(300)] + [relevant_line(rnd, DEVICE_EVENTS)] * 3
    rnd.shuffle(lines)
    data = b''.join(line + b'\n' for line in lines) + b'{"last":"line without a newline"}'
    specs = blockscan.needle_specs(_needles(DEVICE_EVENTS, False))

    class Recording(blockscan.BlockScanner):
        def __init__(self):
            super().__init__(specs, WINDOWS['hours'], KEY_COLUMNS[DEVICE_EVENTS])
            self.calls = []

        def scan_block(self, block, end=None):
            self.calls.append((len(block), end))
            return super().scan_block(block, end)

    def read_lines(rewind):
        scanner = Recording()
        reader = LineReader(io.BytesIO(data), 0, lambda offset: True, _needles(DEVICE_EVENTS, False),
                            block_bytes=4096, bulk=scanner, rewind=rewind)
        produced = [(offset, number, line) for item in reader
                    for offset, number, line, _ in (item.lines() if hasattr(item, 'lines') else [item + (None,)])]
        counts = {'parsed': 0, 'outside_range': 0, 'windows': {}}
        for result in reader.bulk_counts:
            bulk.add(result, counts)
        return produced, reader.lines_seen, counts, scanner.calls

    carried, rewound = read_lines(False), read_lines(True)
    assert rewound[:3] == carried[:3]
    assert rewound[1] == len(lines) + 1 and rewound[2]['parsed'] > 250
    assert [line for _, _, line in rewound[0]][-1] == b'{"last":"line without a newline"}'
    # with rewind, blocks reach the scanner whole, their complete lines marked by `end`
    assert all(end is None for _, end in carried[3])
    assert any(end is not None and end < size for size, end in rewound[3])
    # every byte scanned once (the last line with the newline the reader adds)
    assert sum(end if end is not None else size for size, end in rewound[3]) == len(data) + 1


def test_needles_it_cannot_express_keep_the_python_path():
    import re  # pylint: disable=import-outside-toplevel
    assert blockscan.needle_specs(re.compile(b'runcommand')) is None
    assert blockscan.needle_specs(LiteralNeedles(exact=[b'-File'], confirm={b'-File': re.compile(b'-File x')})) is None
    assert blockscan.needle_specs(LiteralNeedles(exact=[b'x'])) == ((b'x', False, 0),)


_EVERY_PATH = r'''
import hashlib, random, sys
from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics
from transforms.read import _blockscan, blockscan
from transforms.read.schema import KEY_COLUMNS
from tests.test_bulk import WINDOWS, clean_line, hostile_lines, mixed_file, valid_lines
digest, accepted = hashlib.sha256(), 0
for table in KEY_COLUMNS:
    for semantics in ('sentinel', 'strict'):
        specs = blockscan.needle_specs(read_filters(table, Semantics.named(semantics), 'full')[0])
        scanner = blockscan.BlockScanner(specs, WINDOWS['sliding-minutes'], KEY_COLUMNS[table])
        blocks = [mixed_file(seed, table) for seed in range(40)]
        rnd = random.Random(1)
        clean = [clean_line(rnd, table) for _ in range(20)]
        blocks += [b'\n'.join(clean + [line]) + b'\n' for line in hostile_lines(table) + valid_lines()]
        for block in blocks:
            block = block if block.endswith(b'\n') else block + b'\n'
            result = scanner.scan_block(block)
            accepted += result is not None
            digest.update(repr((result, blockscan.candidate_lines(specs, block))).encode())
print(_blockscan.SIMD, accepted, digest.hexdigest())
'''


def test_every_vector_path_gives_the_same_results():
    # The processor decides the path (AVX2, SSE2, one byte at a time: arm64 and others); each must
    # give what the others give, on blocks mixing clean, relevant, hostile and edge lines.
    import os  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outputs = {}
    for level in ('', 'sse2', 'none'):
        env = dict(os.environ, RARERUN_BLOCKSCAN_SIMD=level, PYTHONPATH=root)
        out = subprocess.run([sys.executable, '-c', _EVERY_PATH], env=env, cwd=root, capture_output=True, text=True,
                             check=True, timeout=300).stdout.split()
        outputs[out[0]] = out[1:]
    assert 'none' in outputs and len(outputs) >= 2  # at least one vector path where the machine has one
    assert len({tuple(value) for value in outputs.values()}) == 1, outputs
    assert int(next(iter(outputs.values()))[0]) >= 40  # blocks without a hostile line taken: the validation ran


def _read_relevant(path, table, semantics, start=0, stop=None, split_after=None):
    """The outputs of the read step with ``--scan relevant`` (needles, no validation of skipped
    records) over [start, stop): (items, residual) as `read_source` returns them."""
    from transforms.read.sources import ExportSource  # pylint: disable=import-outside-toplevel
    needles, keep = read_filters(table, semantics, 'relevant')
    source = ExportSource(path, table, 'auto', needles, keep, WINDOWS['daily'])
    source.block_bytes = 1024
    return read_source(source, path, start, stop, split_after)


def _relevant_outputs(path, table, semantics, split_at, split_after):
    import os  # pylint: disable=import-outside-toplevel

    def relevant(start, stop, split_after):
        return _read_relevant(path, table, semantics, start, stop, split_after)
    return read_three_ways(relevant, os.path.getsize(path), split_at, split_after)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), table=st.sampled_from(TABLES), strict=st.booleans(), seed=st.integers(0, 2 ** 32 - 1),
       split_at=st.integers(0, 60_000), split_after=st.integers(0, 20))
def test_scan_relevant_reads_the_same_with_the_native_needles(tmp_path_factory, monkeypatch, data, table, strict,
                                                             seed, split_at, split_after):
    from tests.test_bulk import mixed_file  # pylint: disable=import-outside-toplevel
    path = tmp_path_factory.mktemp('relevant') / (table + '.jsonl')
    path.write_bytes(mixed_file(seed, table, data.draw(export_lines(table))))
    semantics = STRICT if strict else SENTINEL
    native = _relevant_outputs(str(path), table, semantics, split_at, split_after)
    with monkeypatch.context() as patch:
        patch.setattr(blockscan, '_blockscan', None)
        python = _relevant_outputs(str(path), table, semantics, split_at, split_after)
    assert native == python
    assert native[0] == native[1] == native[2]
    assert native[0][2]['skipped_irrelevant'] > 0 or native[0][2]['read'] < 5


@pytest.mark.parametrize('native', [True, False])
@pytest.mark.parametrize('seed, split_after', [(0, 0), (1, 0), (1, 1), (5, 0), (6, 0)])
def test_scan_relevant_counts_each_line_once_across_a_dynamic_split(tmp_path, monkeypatch, native, seed,
                                                                   split_after):
    # The lines the needles skip after a range's last candidate are the next range's once a
    # dynamic split ends the range there: counted (and read) by that range only.
    from tests.test_bulk import mixed_file  # pylint: disable=import-outside-toplevel
    if not native:
        monkeypatch.setattr(blockscan, '_blockscan', None)
    path = tmp_path / 'AzureActivity.jsonl'
    path.write_bytes(mixed_file(seed, AZURE_ACTIVITY))
    whole = summarize(_read_relevant(str(path), AZURE_ACTIVITY, SENTINEL)[0])
    primary, residual = _read_relevant(str(path), AZURE_ACTIVITY, SENTINEL, split_after=split_after)
    assert residual is not None
    both = summarize(primary + _read_relevant(str(path), AZURE_ACTIVITY, SENTINEL, residual)[0])
    text = path.read_bytes()
    assert both == whole and whole[2]['read'] == text.count(b'\n') + (not text.endswith(b'\n'))
