"""Event Hubs Capture Avro files: bodies of every JSON shape, streaming by block, corrupt blocks.

The fixtures are written here with fastavro and the EventData schema Microsoft documents for
Event Hubs Capture (no real capture file of these tables is public).
"""

import io
import json
import os

import pytest

from capture_files import write_capture
from tests.test_export_formats import AA_ROW, activity_record, read_file, write_lines
from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics
from transforms.read import formats as export_formats
from transforms.read.formats import eventhub_capture
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS

pytestmark = pytest.mark.filterwarnings('ignore')


def rows(n):
    return [dict(AA_ROW, CorrelationId='c%03d' % i, EventDataId='e%03d' % i) for i in range(n)]


def expected_rows(tmp_path, values):
    return read_file(write_lines(tmp_path / 'expected.json', values), AZURE_ACTIVITY)[0]


@pytest.mark.parametrize('codec', ['null', 'deflate'])
def test_bodies_of_every_shape(tmp_path, codec):
    data = rows(9)
    bodies = [
        json.dumps({'records': data[0:3]}).encode(),                                  # data export envelope
        json.dumps({'records': [activity_record(r) for r in data[3:5]]}).encode(),    # diagnostic settings
        json.dumps(activity_record(data[5], 'upn')).encode(),                         # one record
        json.dumps(data[6], indent=2).encode(),                                       # pretty row
        (json.dumps(data[7]) + '\n' + json.dumps(data[8]) + '\n').encode(),           # JSON lines in a body
    ]
    path = str(tmp_path / '00.avro')
    write_capture(path, bodies, codec=codec, sync_interval=200)
    with open(path, 'rb') as handle:
        assert export_formats.detect_format(path, handle.read(4096)) == 'eventhub_avro'
    got, dead, stats = read_file(path, AZURE_ACTIVITY)
    assert dead == [] and got == expected_rows(tmp_path, data)
    assert stats == [(5, 0)]


def test_defender_bodies_and_other_tables(tmp_path):
    props = {'DeviceName': 'vm1.contoso.local', 'DeviceId': 'd1', 'ActionType': 'PowerShellCommand',
             'InitiatingProcessCommandLine': 'powershell -File script1.ps1', 'ReportId': 3,
             'AdditionalFields': '{"Command":"Get-Process"}', 'Timestamp': '2024-03-01T10:00:01.5Z'}
    records = [{'time': '2024-03-01T10:05:00Z', 'tenantId': 't', 'operationName': 'Publish',
                'category': 'AdvancedHunting-DeviceEvents', 'properties': props},
               {'time': '2024-03-01T10:05:00Z', 'tenantId': 't', 'operationName': 'Publish',
                'category': 'AdvancedHunting-DeviceFileEvents', 'properties': dict(props, FileName='x')}]
    path = str(tmp_path / '01.avro')
    write_capture(path, [json.dumps({'records': records}).encode(),
                                          json.dumps(activity_record(AA_ROW)).encode()])
    got, dead, _ = read_file(path, DEVICE_EVENTS)
    assert dead == [] and len(got) == 1
    assert got[0]['TimeGenerated'] == got[0]['Timestamp'] == 1709287201500000
    assert got[0]['AdditionalFields'] == {'Command': 'Get-Process'}


def _blocks(path):
    """Byte offsets of the blocks of an Avro file (after the header)."""
    with open(path, 'rb') as handle:
        source = eventhub_capture._Input(handle)
        _, sync = eventhub_capture.read_header(source)
        offsets = []
        while not source.at_end():
            offsets.append(source.offset)
            source.read_long()
            size = source.read_long()
            source.read(size + 16)
    return offsets, sync


def test_corrupt_block_is_one_dead_letter_and_the_rest_is_read(tmp_path):
    data = rows(30)
    path = str(tmp_path / 'c.avro')
    write_capture(path, [json.dumps(r).encode() for r in data], sync_interval=300)
    offsets, sync = _blocks(path)
    assert len(offsets) >= 4
    raw = bytearray(open(path, 'rb').read())
    # Corrupt the second block's sync marker, and the inside of the third block's data.
    second_end = offsets[2] - 16
    raw[second_end:second_end + 16] = b'\0' * 16
    raw[offsets[2] + 6:offsets[2] + 12] = b'\xff' * 6
    open(path, 'wb').write(bytes(raw))
    got, dead, _ = read_file(path, AZURE_ACTIVITY)
    assert [d['block_offset'] for d in dead][:1] == [offsets[1]]
    assert all('Avro' in d['reason'] or 'JSON' in d['reason'] or 'TimeGenerated' in d['reason'] for d in dead)
    # The blocks after the corrupt ones are read.
    last = expected_rows(tmp_path, data)
    kept = {r['CorrelationId'] for r in got}
    tail = {r['CorrelationId'] for r in last[-3:]}
    assert tail <= kept and len(kept) < len(data)


def test_truncated_file_keeps_the_complete_blocks(tmp_path):
    data = rows(20)
    path = str(tmp_path / 't.avro')
    write_capture(path, [json.dumps(r).encode() for r in data], sync_interval=300)
    offsets, _ = _blocks(path)
    raw = open(path, 'rb').read()
    open(path, 'wb').write(raw[:offsets[-1] + 20])
    got, dead, _ = read_file(path, AZURE_ACTIVITY)
    assert [(d['block_offset'], d['reason']) for d in dead] == [(offsets[-1], eventhub_capture.TRUNCATED_BLOCK)]
    assert got == expected_rows(tmp_path, data)[:len(got)] and 0 < len(got) < len(data)


def test_bad_bodies_are_dead_letters_with_their_record(tmp_path):
    path = str(tmp_path / 'b.avro')
    write_capture(path, [b'{broken', b'\xff\xfe', json.dumps(AA_ROW).encode(), None,
                                          json.dumps([AA_ROW, 3]).encode()])
    got, dead, _ = read_file(path, AZURE_ACTIVITY)
    assert len(got) == 2
    assert [(d['record'], d.get('index'), d['reason']) for d in dead] == [
        (0, None, 'not JSON'), (1, None, 'invalid UTF-8'), (3, None, eventhub_capture.NO_BODY),
        (4, 1, 'not a JSON object')]


def test_not_avro_header(tmp_path):
    path = tmp_path / 'x.avro'
    path.write_bytes(b'Obj\x01\xff\xff\xff')
    got, dead, _ = read_file(str(path), AZURE_ACTIVITY)
    assert got == [] and dead[0]['reason'] == eventhub_capture.BAD_HEADER


def test_prefilter_applies_to_each_body(tmp_path):
    needles, _ = read_filters(AZURE_ACTIVITY, Semantics.named('sentinel'))
    other = dict(AA_ROW, OperationNameValue='Microsoft.Compute/virtualMachines/write', Authorization='{}')
    path = str(tmp_path / 'p.avro')
    write_capture(path, [json.dumps(other).encode(), json.dumps({'records': [other, AA_ROW]}).encode()])
    got, dead, stats = read_file(path, AZURE_ACTIVITY, needles=needles)
    assert len(got) == 2 and stats == [(2, 1)]


def test_reader_streams_block_by_block():
    """The reader never asks the stream for more than a bounded amount at once."""
    body = json.dumps(AA_ROW).encode()
    buffer = io.BytesIO()
    write_capture(buffer, [body] * 3000, sync_interval=64 << 10)
    size = len(buffer.getvalue())

    class Recording(io.BytesIO):
        largest = 0

        def read(self, n=-1):
            Recording.largest = max(Recording.largest, n if n is not None and n >= 0 else 1 << 40)
            return super().read(n)

    class Counter:
        lines_seen = lines_produced = 0

    stream = Recording(buffer.getvalue())
    counter = Counter()
    items = list(eventhub_capture.read_capture(counter, stream, AZURE_ACTIVITY))
    assert len(items) == 3000 and counter.lines_seen == 3000
    assert Recording.largest <= 2 * eventhub_capture.READ_BYTES and size > 3 * (64 << 10)
    assert os.path.basename(eventhub_capture.__file__) == 'eventhub_capture.py'
