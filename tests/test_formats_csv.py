"""CSV exports of the Log Analytics portal and Azure Data Explorer (fixtures built here from the
documented and observed layout; the real portal exports are tested in test_export_formats)."""

import json

import pytest

from tests.test_export_formats import AA_ROW, read_file, write_lines
from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics
from transforms.read.formats import csv_export
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS


@pytest.mark.parametrize('text, expected', [
    ('4/28/2021, 2:32:14.029 PM', '2021-04-28T14:32:14.029Z'),
    ('4/28/2021, 12:02:14.000 AM', '2021-04-28T00:02:14.000Z'),
    ('12/1/2021, 12:00:00.5 PM', '2021-12-01T12:00:00.5Z'),
    ('1/2/2024, 9:05:07 AM', '2024-01-02T09:05:07Z'),
    ('2024-03-01T10:00:00.1234567Z', '2024-03-01T10:00:00.1234567Z'),
    ('13/1/2021, 1:00:00 PM', '13/1/2021, 1:00:00 PM'),  # unchanged: not a date (typed null later)
    ('1/1/2021, 13:00:00 PM', '1/1/2021, 13:00:00 PM'),
])
def test_portal_datetimes(text, expected):
    assert csv_export.portal_datetime_iso(text) == expected


def csv_cell(text):
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def write_csv(path, header, records, bom=True, newline='\r\n'):
    text = newline.join(','.join(csv_cell(c) for c in record) for record in [header] + records) + newline
    path.write_bytes((b'\xef\xbb\xbf' if bom else b'') + text.encode('utf-8'))
    return str(path)


def test_new_layout_with_pretty_json_and_multiline_cells(tmp_path):
    expected, _, _ = read_file(write_lines(tmp_path / 'la.json', [AA_ROW]), AZURE_ACTIVITY)
    auth = AA_ROW['Authorization']
    header = ['$table', 'TimeGenerated [UTC]', 'OperationNameValue', 'Authorization', 'Authorization_d',
              'CorrelationId', 'Caller', 'CallerIpAddress', 'ActivityStatusValue', 'EventDataId', 'Properties']
    record = ['AzureActivity', '3/1/2024, 10:00:00.123 AM', AA_ROW['OperationNameValue'], auth,
              json.dumps(json.loads(auth), indent=2).replace('\n', '\r\n'), 'c1', 'alice@contoso.com', '10.0.0.1',
              'Success', 'e1', 'line one\r\nline "two"\r\n']
    rows, dead, stats = read_file(write_csv(tmp_path / 'query_data.csv', header, [record]), AZURE_ACTIVITY)
    assert dead == [] and rows == expected and stats == [(1, 0)]


def test_pretty_json_string_cell_is_kept_verbatim(tmp_path):
    pretty = json.dumps(json.loads(AA_ROW['Authorization']), indent=2).replace('\n', '\r\n')
    header = ['TimeGenerated [UTC]', 'Authorization']
    rows, dead, _ = read_file(write_csv(tmp_path / 'a.csv', header, [['3/1/2024, 10:00:00.123 AM', pretty]]),
                              AZURE_ACTIVITY)
    assert dead == [] and rows[0]['Authorization'] == pretty


def test_adx_csv_without_bom_and_iso_times(tmp_path):
    expected, _, _ = read_file(write_lines(tmp_path / 'la.json', [AA_ROW]), AZURE_ACTIVITY)
    header = list(AA_ROW)
    rows, dead, _ = read_file(write_csv(tmp_path / 'adx.csv', header, [[AA_ROW[k] for k in header]],
                                        bom=False, newline='\n'), AZURE_ACTIVITY)
    assert dead == [] and rows == expected


def test_legacy_layout(tmp_path):
    expected, _, _ = read_file(write_lines(tmp_path / 'la.json', [AA_ROW]), AZURE_ACTIVITY)
    header = ['OperationName', 'ActivityStatus', 'CorrelationId', 'Caller', 'CallerIpAddress', 'Properties',
              'Authorization', 'EventDataId', 'TimeGenerated [UTC]']
    base = ['Run Command on Virtual Machine', 'Success', 'c1', 'alice@contoso.com', '10.0.0.1',
            json.dumps({'message': AA_ROW['OperationNameValue']}, indent=2), AA_ROW['Authorization'], 'e1',
            '3/1/2024, 10:00:00.123 AM']
    no_message = list(base)
    no_message[5] = '{}'
    display_only = list(no_message)
    display_only[6] = ''
    rows, dead, _ = read_file(write_csv(tmp_path / 'old.csv', header, [base, no_message, display_only]), AZURE_ACTIVITY)
    assert dead == []
    assert rows[0] == expected[0]
    assert rows[1] == expected[0]  # from Authorization.action
    assert rows[2]['OperationNameValue'] == 'Run Command on Virtual Machine'  # nothing better: kept


def test_legacy_columns_only_fill_empty_new_columns():
    row = {'OperationName': 'Run Command on Virtual Machine', 'OperationNameValue': 'X/Y/action',
           'ActivityStatus': 'Succeeded', 'ActivityStatusValue': 'Success', 'Properties': '{"message": "A/B"}'}
    assert csv_export.legacy_activity_columns(dict(row)) == row
    row.update(OperationNameValue='', ActivityStatusValue='')
    mapped = csv_export.legacy_activity_columns(dict(row))
    assert mapped['OperationNameValue'] == 'A/B' and mapped['ActivityStatusValue'] == 'Succeeded'
    assert csv_export.legacy_activity_columns({'OperationName': 'Microsoft.Web/connections/dynamicInvoke/action',
                                                'Properties': ''})['OperationNameValue'] == \
        'Microsoft.Web/connections/dynamicInvoke/action'


def test_bad_records_are_dead_letters_and_the_rest_is_read(tmp_path):
    header = ['TimeGenerated [UTC]', 'OperationNameValue', 'CorrelationId']
    good = ['3/1/2024, 10:00:00.123 AM', AA_ROW['OperationNameValue'], 'c1']
    good = [csv_cell(c) for c in good]
    text = ('\ufeff' + ','.join(header) + '\r\n' + ','.join(good) + '\r\n'
            + 'only,two\r\n'                                   # wrong column count
            + '"3/1/2024, 10:00:01 AM","a"b",c2\r\n'           # bad quoting
            + '\r\n'                                          # blank line: ignored
            + ','.join(good[:2]) + ',"multi\r\nline"\r\n'
            + 'not a time,x,c4\r\n')                          # no TimeGenerated
    path = tmp_path / 'bad.csv'
    path.write_bytes(text.encode('utf-8'))
    rows, dead, stats = read_file(str(path), AZURE_ACTIVITY)
    assert [r['CorrelationId'] for r in rows] == ['c1', 'multi\r\nline']
    assert [(d['line'], d['reason'].split(':')[0]) for d in dead] == [
        (3, 'CSV record with 2 cells, the header has 3'), (4, 'not valid CSV'),
        (8, 'TimeGenerated missing or unparsable')]
    assert stats == [(5, 0)]


def test_invalid_utf8_record(tmp_path):
    path = tmp_path / 'u.csv'
    path.write_bytes(b'TimeGenerated,Caller\n2024-03-01T00:00:00Z,\xff\xfe\n2024-03-01T00:00:00Z,ok\n')
    rows, dead, _ = read_file(str(path), AZURE_ACTIVITY)
    assert [r['Caller'] for r in rows] == ['ok'] and dead[0]['reason'] == 'invalid UTF-8' and dead[0]['line'] == 2


def test_dynamic_cells_and_other_tables(tmp_path):
    header = ['$table', 'TimeGenerated [UTC]', 'DeviceName', 'InitiatingProcessCommandLine', 'AdditionalFields', 'ReportId']
    pretty = json.dumps({'Command': 'Get-Process'}, indent=2).replace('\n', '\r\n')
    records = [['DeviceEvents', '3/1/2024, 10:00:00.000 AM', 'vm1', 'powershell -File script1.ps1', pretty, '12'],
               ['DeviceFileEvents', '3/1/2024, 10:00:00.000 AM', 'vm1', '', '', '13'],
               ['DeviceEvents', '3/1/2024, 10:00:00.000 AM', 'vm1', '', '', '']]
    rows, dead, _ = read_file(write_csv(tmp_path / 'de.csv', header, records), DEVICE_EVENTS)
    assert dead == [] and len(rows) == 2
    assert rows[0]['AdditionalFields'] == {'Command': 'Get-Process'} and rows[0]['ReportId'] == 12
    assert rows[1]['AdditionalFields'] is None and rows[1]['ReportId'] is None


def test_prefilter_on_cells(tmp_path):
    needles, _ = read_filters(DEVICE_EVENTS, Semantics.named('sentinel'))
    header = ['TimeGenerated', 'InitiatingProcessCommandLine', 'AdditionalFields']
    records = [['2024-03-01T00:00:00Z', 'powershell -File script1.ps1', '{"Command":"a"}'],
               ['2024-03-01T00:00:00Z', 'cmd.exe /c "dir"', '{"Command":"b"}'],
               ['2024-03-01T00:00:00Z', 'cmd.exe', '{"Command":"\\u002dFile"}']]
    rows, dead, stats = read_file(write_csv(tmp_path / 'p.csv', header, records), DEVICE_EVENTS, needles=needles)
    assert len(rows) == 2 and stats == [(3, 1)] and dead == []
