"""Export formats: detection per file, the JSON shapes, and the real public samples.

The samples in tests/data/samples are copied byte for byte from public repositories (see their
SOURCES.md); the other fixtures are built here from the documentation (tests/data/formats/README.md).
"""

import gzip
import json
import os
import shutil

import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.range_trackers import OffsetRangeTracker

from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics
from transforms.read import formats as export_formats
from transforms.read.formats.compressed import kind_of
from transforms.read.formats.lines import BLOCK_BYTES, MAX_RECORD_BYTES
from transforms.read.formats.records import NO_PROPERTIES
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS
from transforms.read.sources import DEAD_LETTER, ROWS, STATS, ExportSource

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, 'data', 'samples')
FIXTURES = os.path.join(HERE, 'data', 'formats')


def read_file(path, table, input_format='auto', needles=None):
    """(typed rows, dead letters, [(records read, records skipped by the prefilter)]) of one file,
    through ExportSource as the pipeline reads it."""
    source = ExportSource(path, table, input_format, needles)
    compressed = kind_of(path) is not None  # Beam reads a compressed file unsplit, to OFFSET_INFINITY
    stop = OffsetRangeTracker.OFFSET_INFINITY if compressed else os.path.getsize(path)
    items = list(source.read_records(path, OffsetRangeTracker(0, stop)))
    return ([row for k, v in items if k == ROWS for _, row in v], [v for k, v in items if k == DEAD_LETTER],
            [(v['read'], v['skipped_irrelevant']) for k, v in items if k == STATS])


# ------------------------------------------------------------------------------------------ samples

@pytest.mark.parametrize('name, table, count, fmt', [
    ('azureActivity_adele.csv', AZURE_ACTIVITY, 23, 'csv'),
    ('azure_activity.csv', AZURE_ACTIVITY, 325, 'csv'),
    ('graph2otel_DeviceEvents_liveRecord.json', DEVICE_EVENTS, 1, 'defender_streaming'),
    ('graph2otel_DeviceFileEvents_liveRecord.json', DEVICE_FILE_EVENTS, 1, 'defender_streaming'),
])
def test_real_samples_parse_without_dead_letters(name, table, count, fmt, tmp_path):
    path = os.path.join(SAMPLES, name)
    with open(path, 'rb') as handle:
        head = handle.read(4096)
    assert export_formats.detect_format(path, head) == fmt
    rows, dead, _ = read_file(path, table)
    assert dead == [] and len(rows) == count
    assert all(row['TimeGenerated'] is not None for row in rows)
    # gzip of the same file: Beam decompresses it, detection sees the decompressed bytes.
    gz = tmp_path / (name + '.gz')
    with open(path, 'rb') as src, gzip.open(gz, 'wb') as dst:
        shutil.copyfileobj(src, dst)
    assert read_file(str(gz), table)[:2] == (rows, [])
    # and forcing the format gives the same rows
    assert read_file(path, table, input_format=fmt)[:2] == (rows, [])


def test_new_layout_csv_sample_values():
    rows, _, _ = read_file(os.path.join(SAMPLES, 'azureActivity_adele.csv'), AZURE_ACTIVITY)
    first = rows[0]
    # 4/28/2021, 2:32:14.029 PM (UTC)
    assert first['TimeGenerated'] == 1619620334029000
    assert first['OperationNameValue'] == 'MICROSOFT.WEB/SITES/DELETE'
    assert first['ActivityStatusValue'] == 'Success'
    assert first['Caller'] == 'AdeleV@M365x816222.OnMicrosoft.com'
    # The legacy string column keeps its text exactly, line ends inside the quoted cell included.
    assert first['Authorization'].startswith('{\r\n  "scope": "/subscriptions/8f153238')
    assert json.loads(first['Authorization'])['action'] == 'Microsoft.Web/sites/delete'


def test_legacy_layout_csv_sample_maps_operation_and_status():
    rows, _, _ = read_file(os.path.join(SAMPLES, 'azure_activity.csv'), AZURE_ACTIVITY)
    first = rows[0]
    assert first['TimeGenerated'] == 1619464678447000  # 4/26/2021, 7:17:58.447 PM
    # OperationName is the display name "Update Incidents"; the operation is Properties.message.
    assert first['OperationNameValue'] == 'Microsoft.SecurityInsights/incidents/write'
    assert first['ActivityStatusValue'] == 'Succeeded'
    statuses = {row['ActivityStatusValue'] for row in rows}
    assert statuses == {'Succeeded', 'Started', 'Accepted', 'Failed'}
    assert all('/' in row['OperationNameValue'] for row in rows)


def test_defender_samples_use_timestamp_not_publish_time():
    rows, _, _ = read_file(os.path.join(SAMPLES, 'graph2otel_DeviceEvents_liveRecord.json'), DEVICE_EVENTS)
    (row,) = rows
    # "time" is 2026-07-18T15:02:20.569083Z (publish); Timestamp is the event time.
    assert row['TimeGenerated'] == row['Timestamp'] == 1784386551581324
    assert row['AdditionalFields']['ScriptContent'].startswith('# sudo python3 open_files.py')
    # The same record read for another table is skipped, not dead-lettered.
    assert read_file(os.path.join(SAMPLES, 'graph2otel_DeviceEvents_liveRecord.json'), DEVICE_FILE_EVENTS)[:2] == ([], [])


# ---------------------------------------------------------------------------------------- detection

@pytest.mark.parametrize('head, expected', [
    (b'Obj\x01\x04\x14avro.codec', 'eventhub_avro'),
    (b'\xef\xbb\xbfTimeGenerated [UTC],Caller\r\n', 'csv'),
    (b'TimeGenerated,Caller\n', 'csv'),
    (b'{"records": [{"time": "2024-03-01T00:00:00Z"', 'records'),
    (b'{ "records" :[', 'records'),
    (b'{"time": "x", "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION"}\n', 'activity_log'),
    (b'{"time":"x","tenantId":"t","operationName":"Publish","category":"AdvancedHunting-DeviceEvents"', 'defender_streaming'),
    (b'{"TimeGenerated":"2024-03-01T00:00:00Z","OperationNameValue":"x","time":"y","operationName":"z"}', 'jsonl'),
    (b'{"TimeGenerated":"2024-03-01T00:00:00Z"}\n', 'jsonl'),
    (b'\xef\xbb\xbf{"TimeGenerated":"2024-03-01T00:00:00Z"}\n', 'jsonl'),
    (b'', 'jsonl'),
])
def test_detect_format(head, expected):
    assert export_formats.detect_format('x/PT05M.json', head) == expected


def test_detect_format_falls_back_to_the_name():
    assert export_formats.detect_format('a/b/00.avro', b'') == 'eventhub_avro'
    assert export_formats.detect_format('a/b/export.csv.gz', b'') == 'csv'


def test_choose_format_reads_pretty_documents_whole():
    assert export_formats.choose_format('auto', 'x.json', b'{\n  "TimeGenerated": "x"\n}') == 'jsonl+document'
    assert export_formats.choose_format('auto', 'x.json', b'{"a": 1}\n{"a": 2}\n') == 'jsonl'
    assert export_formats.choose_format('defender_streaming', 'x.json', b'[\n') == 'defender_streaming+document'
    assert export_formats.choose_format('csv', 'x.json', b'{\n') == 'csv'
    assert 'jsonl+document' not in export_formats.LINE_FORMATS
    # A broken first line does not make a JSON-lines file a document.
    assert export_formats.choose_format('auto', 'x.json', b'{"a": tru\n{"a": 2}\n') == 'jsonl'
    assert export_formats.choose_format('auto', 'x.json', b'{ "a": 1,\n  "b": 2 }\n') == 'jsonl+document'


@pytest.mark.parametrize('name', ['azure_activity.csv', 'graph2otel_DeviceEvents_liveRecord.json'])
def test_gzip_without_gz_name_is_detected_from_its_bytes(name, tmp_path):
    path = os.path.join(SAMPLES, name)
    table = AZURE_ACTIVITY if name.endswith('.csv') else DEVICE_EVENTS
    expected, _, stats = read_file(path, table)
    hidden = tmp_path / 'blob.bin'
    with open(path, 'rb') as src, gzip.GzipFile(hidden, 'wb', mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    assert export_formats.choose_format('auto', str(hidden), hidden.read_bytes()[:4096]) == 'gzip+auto'
    assert read_file(str(hidden), table) == (expected, [], stats)
    envelope = tmp_path / 'eh.bin'
    with gzip.GzipFile(envelope, 'wb', mtime=0) as dst:
        dst.write((json.dumps({'records': [AA_ROW, AA_ROW]}) + '\n').encode())
    assert len(read_file(str(envelope), AZURE_ACTIVITY)[0]) == 2


# ------------------------------------------------------------------------------------- JSON shapes

AA_ROW = {'TimeGenerated': '2024-03-01T10:00:00.123Z', 'OperationNameValue': 'Microsoft.Compute/virtualMachines/runCommand/action',
          'Authorization': '{"action":"Microsoft.Compute/virtualMachines/runCommand/action","scope":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"}',
          'CorrelationId': 'c1', 'Caller': 'alice@contoso.com', 'CallerIpAddress': '10.0.0.1',
          'ActivityStatusValue': 'Success', 'EventDataId': 'e1'}


def activity_record(row, caller_in='caller'):
    auth = json.loads(row['Authorization'])
    claims = {'aud': 'https://management.core.windows.net/'}
    record = {'time': row['TimeGenerated'], 'resourceId': '/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1',
              'operationName': row['OperationNameValue'], 'category': 'Administrative',
              'resultType': row['ActivityStatusValue'], 'resultSignature': 'Succeeded.OK', 'durationMs': '0',
              'callerIpAddress': row['CallerIpAddress'], 'correlationId': row['CorrelationId'],
              'identity': {'authorization': auth, 'claims': claims}, 'level': 'Information',
              'properties': {'statusCode': 'OK', 'eventDataId': row['EventDataId']}}
    if caller_in == 'caller':
        record['caller'] = row['Caller']
    elif caller_in == 'upn':
        claims['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn'] = row['Caller']
    else:
        claims['http://schemas.microsoft.com/identity/claims/objectidentifier'] = row['Caller']
    return record


def write_lines(path, values):
    with open(path, 'w', encoding='utf-8') as handle:
        for value in values:
            handle.write(json.dumps(value) + '\n')
    return str(path)


@pytest.mark.parametrize('caller_in', ['caller', 'upn', 'oid'])
def test_activity_log_record_maps_like_the_row(tmp_path, caller_in):
    expected, _, _ = read_file(write_lines(tmp_path / 'la.json', [AA_ROW]), AZURE_ACTIVITY)
    rows, dead, _ = read_file(write_lines(tmp_path / 'PT1H.json', [activity_record(AA_ROW, caller_in)]), AZURE_ACTIVITY)
    assert dead == [] and rows == expected


def test_activity_log_caller_precedence_and_authorization_text():
    from transforms.read.formats.activity_log import activity_row
    record = activity_record(AA_ROW, 'upn')
    record['identity']['claims']['http://schemas.microsoft.com/identity/claims/objectidentifier'] = 'oid-1'
    assert activity_row(record)['Caller'] == 'alice@contoso.com'
    record['caller'] = 'bob@contoso.com'
    assert activity_row(record)['Caller'] == 'bob@contoso.com'
    del record['identity']['claims']['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn']
    del record['caller']
    assert activity_row(record)['Caller'] == 'oid-1'
    # Authorization: compact JSON with the record's key order (scope before action here).
    record['identity']['authorization'] = {'scope': '/s/x', 'action': 'a', 'evidence': {'role': 'Owner'}}
    from transforms.read.ingest import typed_row
    assert typed_row(AZURE_ACTIVITY, activity_row(record))['Authorization'] == \
        '{"scope":"/s/x","action":"a","evidence":{"role":"Owner"}}'


def test_records_envelope_dead_letters_a_bad_record_alone(tmp_path):
    good = dict(AA_ROW)
    envelope = {'records': [good, 'not an object', dict(good, TimeGenerated='never'), activity_record(good)]}
    path = tmp_path / 'eh.json'
    path.write_text(json.dumps(envelope) + '\n{broken\n' + json.dumps({'records': [good]}) + '\n')
    rows, dead, stats = read_file(str(path), AZURE_ACTIVITY)
    assert len(rows) == 3
    assert [(d['line'], d.get('index'), d['reason']) for d in dead] == [
        (1, 1, 'not a JSON object'), (1, 2, 'TimeGenerated missing or unparsable'), (2, None, 'not JSON')]
    assert stats == [(3, 0)]


def test_records_of_another_table_are_skipped(tmp_path):
    rows = [dict(AA_ROW, Type='AzureActivity'), dict(AA_ROW, Type='SigninLogs'),
            {'category': 'AdvancedHunting-DeviceEvents', 'time': 'x', 'operationName': 'Publish',
             'properties': {'Timestamp': '2024-03-01T10:00:00Z'}}]
    read, dead, _ = read_file(write_lines(tmp_path / 'x.json', [{'records': rows}]), AZURE_ACTIVITY)
    assert len(read) == 1 and dead == []


def test_defender_record_without_properties_is_a_dead_letter(tmp_path):
    record = {'time': '2024-03-01T10:00:00Z', 'operationName': 'Publish', 'category': 'AdvancedHunting-DeviceEvents',
              'properties': 'oops'}
    rows, dead, _ = read_file(write_lines(tmp_path / 'd.json', [record]), DEVICE_EVENTS)
    assert rows == [] and dead[0]['reason'] == NO_PROPERTIES


def test_pretty_documents_and_arrays(tmp_path):
    rows = [dict(AA_ROW, CorrelationId='c%d' % i) for i in range(3)]
    expected, _, _ = read_file(write_lines(tmp_path / 'la.json', rows), AZURE_ACTIVITY)
    pretty = tmp_path / 'pretty.json'
    pretty.write_text('\n'.join(json.dumps(row, indent=2) for row in rows) + '\n')
    assert read_file(str(pretty), AZURE_ACTIVITY)[:2] == (expected, [])
    array = tmp_path / 'array.json'
    array.write_text(json.dumps(rows, indent=1))
    assert read_file(str(array), AZURE_ACTIVITY)[:2] == (expected, [])
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps(rows[0], indent=2) + '\n{\n  "oops": \n}\n' + json.dumps(rows[1], indent=2) + '\n')
    got, dead, _ = read_file(str(broken), AZURE_ACTIVITY)
    assert got == expected[:2] and [(d['line'], d['reason']) for d in dead] == [(11, 'not JSON')]


def test_workspace_export_tree_matches_with_double_star(tmp_path):
    root = tmp_path / 'WorkspaceResourceId=' / 'subscriptions' / 's' / 'resourcegroups' / 'rg' / 'providers' \
        / 'microsoft.operationalinsights' / 'workspaces' / 'ws'
    names = []
    for day, hour, minute, blob in [(1, 10, 0, 'PT05M.json'), (1, 10, 5, 'PT05M.json'), (1, 10, 5, 'PT05M_1.json'),
                                    (2, 0, 0, 'PT1H.json')]:
        folder = root / 'y=2024' / 'm=03' / ('d=%02d' % day) / ('h=%02d' % hour) / ('m=%02d' % minute)
        folder.mkdir(parents=True, exist_ok=True)
        names.append(write_lines(folder / blob, [dict(AA_ROW, CorrelationId=blob + str(day))]))
    pattern = str(tmp_path / 'WorkspaceResourceId=' / '**')
    matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    assert matched == sorted(names)


# ----------------------------------------------------------------------------------------- prefilter

def test_prefilter_passes_an_envelope_when_any_record_could_match(tmp_path):
    needles, _ = read_filters(AZURE_ACTIVITY, Semantics.named('sentinel'))
    other = dict(AA_ROW, OperationNameValue='Microsoft.Compute/virtualMachines/write',
                 Authorization='{"action":"Microsoft.Compute/virtualMachines/write"}')
    path = write_lines(tmp_path / 'eh.json', [{'records': [other, other]}, {'records': [other, AA_ROW]},
                                              activity_record(AA_ROW)])
    rows, dead, stats = read_file(path, AZURE_ACTIVITY, needles=needles)
    full, _, _ = read_file(path, AZURE_ACTIVITY)
    relevant = [r for r in full if 'runcommand' in r['OperationNameValue'].lower()]
    assert [r for r in rows if 'runcommand' in r['OperationNameValue'].lower()] == relevant
    assert stats == [(3, 1)] and dead == []


# ------------------------------------------------------------------------------------ record length

def line_of(length, time='2024-03-01T10:00:00Z'):
    """A JSON line of exactly `length` bytes (without its newline)."""
    head = '{"TimeGenerated": "%s", "InitiatingProcessCommandLine": "' % time
    return head + 'a' * (length - len(head) - 2) + '"}'


def test_a_record_of_exactly_the_maximum_length_is_read_and_one_byte_more_is_a_dead_letter(tmp_path):
    # With 256 KiB blocks the 1 MiB line fills exactly four blocks before its newline arrives.
    longest, too_long = line_of(MAX_RECORD_BYTES), line_of(MAX_RECORD_BYTES + 1)
    assert len(longest.encode()) == MAX_RECORD_BYTES and MAX_RECORD_BYTES % BLOCK_BYTES == 0
    path = tmp_path / 'DeviceEvents.jsonl'
    path.write_text('\n'.join([longest, too_long, line_of(100), longest]) + '\n')
    rows, dead, stats = read_file(str(path), DEVICE_EVENTS)
    # 77 bytes of each line are the JSON around the command line.
    assert [len(row['InitiatingProcessCommandLine']) for row in rows] == [MAX_RECORD_BYTES - 77, 23,
                                                                          MAX_RECORD_BYTES - 77]
    assert [(d['line'], d['reason']) for d in dead] == [(2, 'record longer than 1 MiB')]
    assert stats == [(4, 0)]
    # A last line without its newline, of the maximum length.
    path.write_text(line_of(100) + '\n' + longest)
    rows, dead, _ = read_file(str(path), DEVICE_EVENTS)
    assert len(rows) == 2 and dead == []


# ------------------------------------------------------------------------------------- table names

@pytest.mark.parametrize('name, kept', [
    ('AzureActivity', True), ('azureactivity', True), ('AZUREACTIVITY', True), ('DeviceEvents', False), ('', True)])
def test_table_names_in_records_compare_ignoring_case(tmp_path, name, kept):
    # A row's Type or $table, a Defender category and a CSV $table column name its table; a name of
    # another table is skipped, the same name in any case is not.
    rows = [dict(AA_ROW, Type=name), dict(AA_ROW, **{'$table': name})]
    got, dead, _ = read_file(write_lines(tmp_path / 'rows.json', rows), AZURE_ACTIVITY)
    assert len(got) == (2 if kept else 0) and dead == []
    csv_path = tmp_path / 'rows.csv'
    csv_path.write_text('TimeGenerated [UTC],$table,Caller\n2024-03-01T10:00:00Z,%s,alice\n' % name)
    assert len(read_file(str(csv_path), AZURE_ACTIVITY)[0]) == (1 if kept else 0)


@pytest.mark.parametrize('category, kept', [
    ('AdvancedHunting-DeviceEvents', True), ('AdvancedHunting-deviceevents', True),
    ('AdvancedHunting-DEVICEEVENTS', True), ('AdvancedHunting-DeviceFileEvents', False)])
def test_defender_categories_compare_ignoring_case(tmp_path, category, kept):
    record = {'time': '2024-03-01T10:00:01Z', 'category': category,
              'properties': {'Timestamp': '2024-03-01T10:00:00Z', 'DeviceName': 'vm1'}}
    got, dead, _ = read_file(write_lines(tmp_path / 'defender.json', [record]), DEVICE_EVENTS)
    assert [row['DeviceName'] for row in got] == (['vm1'] if kept else []) and dead == []
