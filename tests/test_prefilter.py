"""Property tests: the byte-level prefilter of ``--scan relevant`` never loses a relevant record.

For random export files (rows of the three tables built around the literals the rule's filters look
for, with case variants where the KQL ignores case, JSON ``\\u`` escapes of any character, short
escapes, keys in any order, duplicate keys, extra whitespace, CRLF line ends, malformed lines, gzip),
the rows that the rule's filters keep must be the same, at the same line numbers, whether the lines
are read with the table's ``relevance_needles`` or without any needle:

    LineReader(needles) + read_json_lines + typed_row + filter
        == LineReader(None) + read_json_lines + typed_row + filter

The filters are ``sessions.is_run_command_on_vm`` (AzureActivity), ``file_joins.is_script_file_write``
(DeviceFileEvents) and ``script_cmdlets.script_cmdlet`` (DeviceEvents), under both semantics
(``sentinel`` and ``strict``, each with its own needles). The same holds when a file is read in two
splits at a random byte offset (as a runner splitting a large file does).
"""

import gzip
import io
import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apache_beam.io.range_trackers import OffsetRangeTracker

from transforms.read.formats.json_lines import read_json_lines
from transforms.read.formats.lines import BLOCK_BYTES, LineReader
from transforms.read.formats.records import Decoded
from transforms.read.prefilter import LiteralNeedles, relevance_needles
from transforms.detect.file_joins import is_script_file_write
from transforms.read.ingest import typed_row
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
from transforms.detect.script_cmdlets import script_cmdlet
from transforms.detect.semantics import STRICT_OPERATIONS, STRICT_PROCESS_NAMES, Semantics
from transforms.detect.sessions import is_run_command_on_vm

SEEDS = st.integers(0, 2 ** 32 - 1)
SEMANTICS = {name: Semantics.named(name) for name in ('sentinel', 'strict')}

FILTERS = {
    AZURE_ACTIVITY: is_run_command_on_vm,
    DEVICE_FILE_EVENTS: is_script_file_write,
    DEVICE_EVENTS: lambda row, semantics: script_cmdlet(row, semantics) is not None,
}

# Characters that some case-insensitive comparison of the rule equates with an ASCII letter:
# simple lower-case mapping (=~: U+0130 -> i, KELVIN SIGN -> k) and RE2 case folding (has: LONG S ~ s,
# KELVIN SIGN ~ k), plus look-alikes that must NOT match (dotless i).
UNICODE_VARIANTS = {'i': '\u0130\u0131', 'k': '\u212a', 's': '\u017f', 'e': '\u0118', 'a': '\u00e5'}

OPERATIONS = STRICT_OPERATIONS + (
    'Microsoft.Compute/virtualMachines/write', 'Microsoft.Compute/virtualMachines/start/action',
    'Microsoft.Compute/virtualMachines/runCommand', 'Microsoft.Storage/storageAccounts/listKeys/action')
PROCESS_NAMES = STRICT_PROCESS_NAMES + (
    'RunCommandExtension', 'RunCommandExtension.exe ', 'powershell.exe', 'svchost.exe', 'MsMpEng.exe')
COMMAND_LINES = (
    'powershell  -ExecutionPolicy Unrestricted -File script12.ps1',
    'powershell -File script1.ps1 -Verbose', 'powershell -File\tscript123456789.ps1',
    'powershell -File\nscript7.ps1', 'powershell -File script.ps1', 'powershell -File  script3.ps1',
    'powershell -file script3.ps1', 'powershell -FileX script3.ps1', 'cmd /c x-File script9.ps1x',
    'powershell -Command Get-Process', 'powershell.exe -NoProfile', '"sqlservr.exe" -sMSSQLSERVER')
SCOPES = (
    '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-01',
    '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0',
    '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/arc-01',
    '/subscriptions/s1/resourceGroups/rg', '/subscriptions/s1/resourceGroups/rg/providers/x/virtualMachinesX/vm/')
TIMES = ('2024-03-01T06:16:29.4289583Z', '2024-03-01 06:16:29', '2024-03-01T06:16:29+02:00', 'yesterday', '')


def case_variant(text, rnd):
    """`text` with some letters in the other case, and sometimes one letter replaced by a
    Unicode character that a case-insensitive comparison may (or may not) equate with it."""
    out = [ch.swapcase() if rnd.random() < 0.3 else ch for ch in text]
    if rnd.random() < 0.3:
        positions = [i for i, ch in enumerate(text) if ch.lower() in UNICODE_VARIANTS]
        if positions:
            i = rnd.choice(positions)
            out[i] = rnd.choice(UNICODE_VARIANTS[text[i].lower()])
    return ''.join(out)


def around(strategy):
    """A value of `strategy`, sometimes with random text before and after it."""
    return st.one_of(
        strategy, strategy,
        st.tuples(st.text(max_size=4), strategy, st.text(max_size=4)).map(''.join))


def literal(options):
    """One of `options`, as is or as a case variant (and sometimes embedded in other text)."""
    return around(st.one_of(
        st.sampled_from(options), st.sampled_from(options),
        st.tuples(st.sampled_from(options), SEEDS).map(lambda a: case_variant(a[0], random.Random(a[1])))))


def json_value(strings):
    """A JSON value for a column: usually a string, sometimes null, a number, a list or an object."""
    return st.one_of(
        strings, strings, strings, strings, strings, strings, st.none(), st.integers(-5, 10 ** 6),
        st.lists(strings, max_size=2), st.dictionaries(st.sampled_from(['a', 'Command']), strings, max_size=2))


def authorization():
    scope = st.one_of(st.sampled_from(SCOPES[:1]), literal(SCOPES))
    return st.one_of(
        st.builds(lambda s: json.dumps({'scope': s}), scope),
        st.builds(lambda s: json.dumps({'action': 'Microsoft.Compute/virtualMachines/runCommand/action',
                                        'scope': s}), scope),
        st.builds(lambda s: json.dumps({'scope': s}, ensure_ascii=False), scope),
        st.text(max_size=20), st.just(''))


def additional_fields():
    command = st.one_of(st.sampled_from(['Get-Process', 'script12.ps1', 'Set-Item', '', 'straße']),
                        st.text(max_size=6))
    obj = st.builds(lambda c: {'Command': c}, command)
    return st.one_of(obj, obj.map(json.dumps), st.none(), st.text(max_size=8), st.integers())


def rows(table):
    """Raw rows (dicts) of `table`, mostly close to what the rule looks for."""
    common = {
        'TimeGenerated': st.one_of(st.sampled_from(TIMES), st.text(max_size=5)),
        'DeviceName': literal(('vm-01.contoso.local', 'VM-01', 'arc-01.corp')),
        'Unrelated': json_value(st.text(max_size=10)),
    }
    if table == AZURE_ACTIVITY:
        columns = {
            'TimeGenerated': common['TimeGenerated'],
            'OperationNameValue': json_value(literal(OPERATIONS[:1] * 4 + OPERATIONS)),
            'Authorization': json_value(authorization()),
            'CorrelationId': st.sampled_from(['c1', 'c2']),
            'Caller': st.sampled_from(['alice@contoso.com', '9b0a6817-f91c-45fd-a0a5-951807e30f11']),
            'CallerIpAddress': st.sampled_from(['10.0.0.1', '9.9.9.9']),
            'ActivityStatusValue': literal(('Succeeded', 'Success', 'Started', 'Failed')),
            'Unrelated': common['Unrelated'],
        }
    elif table == DEVICE_FILE_EVENTS:
        columns = {
            'TimeGenerated': common['TimeGenerated'],
            'DeviceName': common['DeviceName'],
            'ActionType': st.sampled_from(['FileCreated', 'FileModified']),
            'InitiatingProcessFileName': json_value(literal(PROCESS_NAMES)),
            'FileName': st.sampled_from(['script3.ps1', '0.status']),
            'FileSize': st.one_of(st.integers(0, 10 ** 6), st.text(max_size=3)),
            'InitiatingProcessId': st.integers(0, 10 ** 5),
            'Unrelated': common['Unrelated'],
        }
    else:
        columns = {
            'TimeGenerated': common['TimeGenerated'],
            'DeviceName': common['DeviceName'],
            'ActionType': literal(('PowerShellCommand', 'ProcessCreated')),
            'InitiatingProcessCommandLine': json_value(literal(COMMAND_LINES)),
            'AdditionalFields': additional_fields(),
            'Unrelated': common['Unrelated'],
        }
    # Any subset of the columns (most rows have them all), in any order.
    every = st.fixed_dictionaries(columns)
    return st.one_of(every, every, every, st.fixed_dictionaries({}, optional=columns))


# --- JSON text with every liberty the format allows -------------------------------------------

SHORT_ESCAPES = {'"': '\\"', '\\': '\\\\', '/': '\\/', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r',
                 '\t': '\\t'}


def whitespace(rnd):
    return ''.join(rnd.choice(' \t\r') for _ in range(rnd.choice((0, 0, 0, 1, 2))))


def _u_escape(code, upper):
    text = '%04x' % code
    return '\\u' + (text.upper() if upper else text)


def encode_char(rnd, ch, escape_rate):
    code = ord(ch)
    must_escape = ch in '"\\' or code < 0x20
    if not must_escape and rnd.random() >= escape_rate:
        return ch
    # A character that must be escaped takes its short escape (backslash + quote, n, t...) unless the file
    # escapes at random, so that files without any backslash-u escape exist.
    if ch in SHORT_ESCAPES and (rnd.random() >= escape_rate or rnd.random() < 0.5):
        return SHORT_ESCAPES[ch]
    upper = rnd.random() < 0.5
    if code > 0xFFFF:  # a surrogate pair
        code -= 0x10000
        return _u_escape(0xD800 + (code >> 10), upper) + _u_escape(0xDC00 + (code & 0x3FF), upper)
    return _u_escape(code, upper)


def encode_string(rnd, text, escape_rate):
    return '"' + ''.join(encode_char(rnd, ch, escape_rate) for ch in text) + '"'


def encode_value(rnd, value, escape_rate):
    if isinstance(value, str):
        return encode_string(rnd, value, escape_rate)
    if isinstance(value, dict):
        return encode_object(rnd, value, escape_rate)
    if isinstance(value, list):
        return '[' + ','.join(whitespace(rnd) + encode_value(rnd, v, escape_rate) + whitespace(rnd)
                              for v in value) + ']'
    return json.dumps(value)


def encode_object(rnd, row, escape_rate):
    """JSON text of `row`: keys in random order, random whitespace, random escapes, sometimes
    a duplicate key before the real one (json.loads keeps the last)."""
    keys = list(row)
    rnd.shuffle(keys)
    members = []
    for key in keys:
        if rnd.random() < 0.05:
            members.append(whitespace(rnd) + encode_string(rnd, key, escape_rate) + ':'
                           + encode_value(rnd, 'decoy', escape_rate))
        members.append(whitespace(rnd) + encode_string(rnd, key, escape_rate) + whitespace(rnd) + ':'
                       + whitespace(rnd) + encode_value(rnd, row[key], escape_rate) + whitespace(rnd))
    return '{' + ','.join(members) + '}'


@st.composite
def export_lines(draw, table):
    """The lines of an export file of `table` (bytes, without newlines)."""
    rnd = random.Random(draw(SEEDS))  # cheap choices; hypothesis still controls (and shrinks) the seed
    # No escapes at all in some files (where the needles must work on the literals alone), a few or many.
    escape_rate = draw(st.sampled_from([0.0, 0.0, 0.02, 0.02, 0.2, 1.0]))
    lines = []
    for row in draw(st.lists(rows(table), min_size=1, max_size=8)):
        kind = rnd.randrange(20)
        if kind == 0:
            lines.append(b'')  # blank line
        elif kind == 1:
            lines.append(b'{"OperationNameValue": "Microsoft.Compute/virtualMachines/runCommand/action", ')  # cut
        elif kind == 2:
            lines.append(b'[1, 2]')  # not an object
        text = whitespace(rnd) + encode_object(rnd, row, escape_rate) + whitespace(rnd)
        line = text.encode('utf-8', 'surrogatepass')
        if rnd.random() < 0.1:
            line += b'\r'
        lines.append(line)
    return lines


# --- reading ----------------------------------------------------------------------------------

def file_bytes(lines, final_newline=True):
    return b'\n'.join(lines) + (b'\n' if final_newline else b'')


def open_stream(data, compressed):
    if compressed:
        return gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data)), mode='rb')
    return io.BytesIO(data)


def read_range(data, compressed, needles, start, stop, block_bytes):
    tracker = OffsetRangeTracker(start, stop)
    reader = LineReader(open_stream(data, compressed), start, tracker.try_claim, needles, block_bytes=block_bytes,
                        stop=stop)
    items = []
    for item in read_json_lines(reader):
        # Numbers count from the range's first line; in the file, as a dead letter reports them.
        if 'line' in item.position:
            item = item._replace(position=dict(item.position, line=reader.absolute_line(item.position['line'])))
        items.append(item)
    return items


def relevant_rows(items, table, semantics):
    """(line number, typed row) of the decoded rows that the rule's filter for `table` keeps."""
    kept = []
    for item in items:
        if not isinstance(item, Decoded):
            continue
        row = typed_row(table, item.row)
        if FILTERS[table](row, semantics):
            kept.append((item.position['line'], row))
    return kept


def check(table, semantics_name, lines, compressed, final_newline, split_at, block_bytes):
    semantics = SEMANTICS[semantics_name]
    data = file_bytes(lines, final_newline)
    needles = relevance_needles(table, semantics.operations, semantics.process_names, semantics.folds_process_names)
    end = len(data) + 1
    expected = relevant_rows(read_range(data, compressed, None, 0, end, block_bytes), table, semantics)
    filtered = relevant_rows(read_range(data, compressed, needles, 0, end, block_bytes), table, semantics)
    assert filtered == expected
    # Two splits at a byte offset, as a runner would read a large file.
    split = min(split_at, len(data))
    halves = (read_range(data, compressed, needles, 0, split, block_bytes)
              + read_range(data, compressed, needles, split, end, block_bytes))
    assert relevant_rows(halves, table, semantics) == expected
    return expected


# Random files per table: a few in every run, many more in the slow run (PREFILTER_EXAMPLES sets it).
QUICK_EXAMPLES = 25
THOROUGH_EXAMPLES = int(os.environ.get('PREFILTER_EXAMPLES', '200'))


def _property(table, examples):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), semantics_name=st.sampled_from(sorted(SEMANTICS)), compressed=st.booleans(),
           final_newline=st.booleans(), split_at=st.integers(0, 4000),
           block_bytes=st.sampled_from([7, 64, BLOCK_BYTES]))
    def test(data, semantics_name, compressed, final_newline, split_at, block_bytes):
        lines = data.draw(export_lines(table))
        check(table, semantics_name, lines, compressed, final_newline, split_at, block_bytes)
    test.__name__ = 'test_prefilter_keeps_every_relevant_row_' + table
    return test


test_prefilter_keeps_every_relevant_row_AzureActivity = _property(AZURE_ACTIVITY, QUICK_EXAMPLES)
test_prefilter_keeps_every_relevant_row_DeviceFileEvents = _property(DEVICE_FILE_EVENTS, QUICK_EXAMPLES)
test_prefilter_keeps_every_relevant_row_DeviceEvents = _property(DEVICE_EVENTS, QUICK_EXAMPLES)
test_prefilter_keeps_every_relevant_row_AzureActivity_thoroughly = pytest.mark.slow(
    _property(AZURE_ACTIVITY, THOROUGH_EXAMPLES))
test_prefilter_keeps_every_relevant_row_DeviceFileEvents_thoroughly = pytest.mark.slow(
    _property(DEVICE_FILE_EVENTS, THOROUGH_EXAMPLES))
test_prefilter_keeps_every_relevant_row_DeviceEvents_thoroughly = pytest.mark.slow(
    _property(DEVICE_EVENTS, THOROUGH_EXAMPLES))


# --- hand-picked cases the properties must cover --------------------------------------------

def _line(row, **replace):
    text = json.dumps(row, ensure_ascii=False)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode('utf-8')


RUN_COMMAND_ROW = {
    'TimeGenerated': '2024-03-01T06:16:29.4289583Z',
    'OperationNameValue': 'Microsoft.Compute/virtualMachines/runCommand/action',
    'Authorization': json.dumps({'scope': SCOPES[0]}),
    'CorrelationId': 'c1', 'Caller': 'alice@contoso.com', 'CallerIpAddress': '10.0.0.1',
    'ActivityStatusValue': 'Succeeded'}
FILE_ROW = {'TimeGenerated': '2024-03-01T06:16:30Z', 'DeviceName': 'vm-01.contoso.local',
            'InitiatingProcessFileName': 'RunCommandExtension.exe', 'FileName': 'script3.ps1', 'FileSize': 10}
EVENT_ROW = {'TimeGenerated': '2024-03-01T06:16:31Z', 'DeviceName': 'vm-01.contoso.local',
             'ActionType': 'PowerShellCommand',
             'InitiatingProcessCommandLine': 'powershell -ExecutionPolicy Unrestricted -File script3.ps1',
             'AdditionalFields': {'Command': 'Get-Process'}}


@pytest.mark.parametrize('table, row, replace', [
    (AZURE_ACTIVITY, RUN_COMMAND_ROW, {}),
    (AZURE_ACTIVITY, RUN_COMMAND_ROW, {'runCommand': 'RUNCOMMAND'}),
    (AZURE_ACTIVITY, RUN_COMMAND_ROW, {'runCommand': '\\u0072unCommand'}),
    (AZURE_ACTIVITY, RUN_COMMAND_ROW, {'runCommand': 'run\\u0043ommand'}),
    (AZURE_ACTIVITY, RUN_COMMAND_ROW, {'runCommand': 'runComm\\u0041nd'}),
    (DEVICE_FILE_EVENTS, FILE_ROW, {}),
    (DEVICE_FILE_EVENTS, FILE_ROW, {'RunCommandExtension': 'R\\u0075nCommandExtension'}),
    (DEVICE_FILE_EVENTS, FILE_ROW, {'.exe': '\\u002eexe'}),
    (DEVICE_EVENTS, EVENT_ROW, {}),
    (DEVICE_EVENTS, EVENT_ROW, {'-File': '\\u002dFile'}),
    (DEVICE_EVENTS, EVENT_ROW, {'-File': '-Fil\\u0065'}),
    (DEVICE_EVENTS, EVENT_ROW, {'-File ': '-File\\t'}),
])
def test_relevant_row_survives_escapes_and_case(table, row, replace):
    line = _line(row, **replace)
    for name in ('sentinel', 'strict'):
        for compressed in (False, True):
            kept = check(table, name, [line], compressed, True, 5, BLOCK_BYTES)
            assert len(kept) == 1, (name, line)


def test_prefilter_skips_irrelevant_rows():
    # The point of the prefilter: unrelated lines never reach the JSON parser.
    lines = [_line(dict(RUN_COMMAND_ROW, OperationNameValue='Microsoft.Compute/virtualMachines/write'))] * 50
    lines.append(_line(RUN_COMMAND_ROW))
    data = file_bytes(lines)
    needles = relevance_needles(AZURE_ACTIVITY, SEMANTICS['sentinel'].operations, (), False)
    items = read_range(data, False, needles, 0, len(data) + 1, BLOCK_BYTES)
    assert [item.position['line'] for item in items] == [51]


def test_device_events_needle_confirms_the_script_argument():
    # "-File" is found with bytes.find; only "-File", one whitespace (raw or escaped), "script" passes.
    needles = relevance_needles(DEVICE_EVENTS, (), (), False)
    passing = [b'{"c":"powershell -File script1.ps1"}', b'{"c":"powershell -File\\tscript1.ps1"}',
               b'"powershell -File\tscript2.ps1"', b'{"c":"-File \\u0073cript1.ps1"}']
    skipped = [b'{"c":"powershell -File C:\\\\Scripts\\\\backup.ps1"}', b'{"c":"-File  script1.ps1"}',
               b'{"c":"-FileX script1.ps1"}', b'{"c":"-file script1.ps1"}', b'{"c":"-File"}']
    assert [needles.search(line) is not None for line in passing] == [True] * len(passing)
    assert [needles.search(line) is not None for line in skipped] == [False] * len(skipped)
    # Several "-File" in one block: the confirmed one is found after the unconfirmed ones.
    block = b'-File x\n-File  script1.ps1\n-File script2.ps1\n'
    assert needles.search(block).start() == block.index(b'-File script2')


def test_sentinel_process_name_needle_is_case_sensitive():
    # The rule compares InitiatingProcessFileName with ==: a case variant cannot be relevant.
    sentinel = relevance_needles(DEVICE_FILE_EVENTS, (), ('RunCommandExtension.exe',), fold_process_names=False)
    strict = relevance_needles(DEVICE_FILE_EVENTS, (), ('RunCommandExtension.exe',), fold_process_names=True)
    line = b'{"InitiatingProcessFileName":"runcommandextension.exe"}'
    assert sentinel.search(line) is None and strict.search(line) is not None
    assert sentinel.search(line.replace(b'runcommandextension', b'RunCommandExtension')) is not None
    # A name JSON may write with an escaped "/" has no exact literal: every record is read.
    assert relevance_needles(DEVICE_FILE_EVENTS, (), ('a/b.exe',), fold_process_names=False) is None


def test_folded_and_exact_searches_of_the_same_literal_are_remembered_apart():
    # The same bytes as an exact and a folded literal: each search keeps its own next occurrence.
    needles = LiteralNeedles(folded=[b'abc'], exact=[b'abc'])
    assert needles.search(b'ABC abc').start() == 0


def test_operations_without_the_run_command_literal_turn_the_activity_prefilter_off():
    # --strict_operations may name an operation the literal "runcommand" does not spell: then no
    # record may be skipped by it, or that operation's rows would be lost.
    default = relevance_needles(AZURE_ACTIVITY, SEMANTICS['strict'].operations, (), True)
    other = Semantics.named('strict', operations=('Microsoft.Compute/virtualMachines/extensions/write',))
    line = b'{"OperationNameValue":"Microsoft.Compute/virtualMachines/extensions/write"}'
    assert default.search(line) is None
    assert relevance_needles(AZURE_ACTIVITY, other.operations, (), True) is None
    assert relevance_needles(AZURE_ACTIVITY, SEMANTICS['strict'].operations + other.operations, (), True) is None
