"""rare-runcommand inspect: the files of each pattern with their format and first row, without a run."""

import io
import json
import os

import pytest

from pipelines import rare_runcommand
from pipelines.inspect_inputs import inspect
from pipelines.usage import UsageError

SAMPLES = os.path.join(os.path.dirname(__file__), 'data', 'samples')
ACTIVITY_CSV = os.path.join(SAMPLES, 'azure_activity.csv')


def test_each_pattern_with_its_files_format_and_first_row(tmp_path):
    events = tmp_path / 'DeviceEvents'
    events.mkdir()
    (events / 'a.json').write_text(json.dumps({
        'TimeGenerated': '2024-03-01T00:00:01Z', 'DeviceName': 'vm1', 'ActionType': 'PowerShellCommand',
        'AdditionalFields': {'Command': 'Get-Date'}}) + '\n')
    out = io.StringIO()
    status = inspect(['--azure_activity', ACTIVITY_CSV, '--device_file_events', str(tmp_path / 'none' / '*'),
                      '--device_events', str(events / '*')], out)
    lines = out.getvalue().splitlines()
    assert status == 2   # one pattern matches no file
    assert lines[0] == 'AzureActivity: --azure_activity %s: 1 files, 484.9 kB' % ACTIVITY_CSV
    assert lines[1] == '  %s  484.9 kB  csv' % ACTIVITY_CSV
    assert lines[2].startswith('    first row: TimeGenerated=2021-04-26T19:17:58.447000Z  '
                               'OperationNameValue=Microsoft.SecurityInsights/incidents/write')
    assert lines[3:5] == ['DeviceFileEvents: --device_file_events %s: 0 files, 0 B' % (tmp_path / 'none' / '*'),
                          '  no file matches']
    assert lines[6] == '  %s  %d B  jsonl' % (events / 'a.json', (events / 'a.json').stat().st_size)
    assert lines[7] == ('    first row: TimeGenerated=2024-03-01T00:00:01.000000Z  DeviceName=vm1  '
                        'ActionType=PowerShellCommand  InitiatingProcessCommandLine=  '
                        'AdditionalFields={"Command": "Get-Date"}')


def test_another_tables_file_shows_why_it_gives_no_row():
    out = io.StringIO()
    assert inspect(['--sample'], out) == 0
    out = io.StringIO()
    inspect(['--azure_activity', ACTIVITY_CSV, '--device_file_events', ACTIVITY_CSV, '--device_events', ACTIVITY_CSV],
            out)
    assert ('    no row: dead letter "not a DeviceEvents record: none of DeviceName, ActionType, '
            'InitiatingProcessCommandLine, AdditionalFields" at line 2, offset 281') in out.getvalue().splitlines()


def test_inspect_without_inputs_is_a_usage_error(capsys):
    with pytest.raises(UsageError, match='inspect needs the input options'):
        inspect([])
    with pytest.raises(SystemExit) as exit_info:
        rare_runcommand.main(['inspect', '--azur_activity', 'x'])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == 'rare-runcommand: error: unknown option --azur_activity (did you mean --azure_activity?)\n'
