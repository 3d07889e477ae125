"""The same alerts from every runner that can run here, and from the pipeline's portable proto.

* FnApiRunner in memory (what ``python -m pipelines.rare_runcommand`` uses by default);
* FnApiRunner with ``--direct_running_mode=multi_processing --direct_num_workers=2``: every stage runs in
  SDK worker subprocesses, so nothing may depend on state of the launching process;
* BundleBasedDirectRunner, Beam's older local runner (its own execution of windows, side inputs, GBK);
* the pipeline serialised to its Runner API proto (bytes), read back and run: what a portable runner
  (Flink's job server, Dataflow Runner v2) receives.

The input is the bundled sample day (pipelines/sample_data/), or, if it is missing, a tiny day written
here: one Run Command session with its script file and cmdlets. Prism (the DirectRunner's default), Flink
and Dataflow cannot run here: see docs/deploy.md.
"""

import json
import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER

pytestmark = pytest.mark.slow   # whole runs, one of them in worker subprocesses

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / 'pipelines' / 'sample_data'
SAMPLE_TABLES = [SAMPLE_DIR / (table + '.jsonl.gz') for table in ('AzureActivity', 'DeviceFileEvents',
                                                                  'DeviceEvents')]


def write_tiny_tables(directory):
    """One successful Run Command session on vm-a running script0.ps1 (two cmdlets): one alert.

    Returns the input pattern arguments."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scope = ('/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/'
             'Microsoft.Compute/virtualMachines/vm-a')
    authorization = json.dumps({'action': 'Microsoft.Compute/virtualMachines/runCommand/action',
                                'scope': scope})
    activity = [
        {'TimeGenerated': '2024-03-01T10:00:%02d.0000000Z' % second,
         'OperationNameValue': 'Microsoft.Compute/virtualMachines/runCommand/action',
         'Authorization': authorization, 'CorrelationId': 'c0ffee00-0000-0000-0000-000000000001',
         'Caller': 'alice@contoso.com', 'CallerIpAddress': '203.0.113.7', 'ActivityStatusValue': status,
         'EventDataId': 'e%d' % second}
        for second, status in ((0, 'Start'), (5, 'Accept'), (50, 'Success'))]
    files = [{
        'TimeGenerated': '2024-03-01T10:00:10.0000000Z', 'Timestamp': '2024-03-01T10:00:10.0000000Z',
        'DeviceName': 'vm-a.contoso.local', 'DeviceId': 'd1', 'ReportId': 1, 'ActionType': 'FileCreated',
        'InitiatingProcessFileName': 'RunCommandExtension.exe', 'FileName': 'script0.ps1', 'FileSize': 512,
        'InitiatingProcessAccountName': 'system', 'InitiatingProcessAccountDomain': 'nt authority',
        'InitiatingProcessFolderPath': 'c:\\packages\\plugins\\runcommandextension.exe',
        'InitiatingProcessId': 4242}]
    command_line = 'powershell  -ExecutionPolicy Unrestricted -File script0.ps1'
    events = [
        {'TimeGenerated': '2024-03-01T10:00:%02d.0000000Z' % second,
         'Timestamp': '2024-03-01T10:00:%02d.0000000Z' % second,
         'DeviceName': 'vm-a.contoso.local', 'DeviceId': 'd1', 'ReportId': 10 + second,
         'ActionType': 'PowerShellCommand', 'InitiatingProcessCommandLine': command_line,
         'AdditionalFields': {'Command': command}}
        for second, command in ((20, 'script0.ps1'), (21, 'Get-Process'), (22, 'Out-File'))]
    arguments = []
    for table, rows in (('AzureActivity', activity), ('DeviceFileEvents', files), ('DeviceEvents', events)):
        path = directory / (table + '.jsonl')
        path.write_text(''.join(json.dumps(row) + '\n' for row in rows), encoding='utf-8')
        arguments.append('--%s=%s' % (_option_of(table), path))
    return arguments


def _option_of(table):
    return rare_runcommand.TABLE_OPTIONS[table]


@pytest.fixture(scope='module')
def input_args(tmp_path_factory):
    """Input arguments: the bundled sample when it is there, else the tiny day."""
    if all(path.exists() for path in SAMPLE_TABLES):
        return ['--sample']
    return write_tiny_tables(tmp_path_factory.mktemp('tiny'))


def run_detection(argv, output_dir, probe_dir=None, via_proto=False):
    """Runs the detection with `argv`; returns (alerts as canonical JSON, counters, probe pids)."""
    extra = ['--output_dir=%s' % output_dir]
    if probe_dir is not None:
        # The probe below is a lambda of this test module, which SDK worker subprocesses cannot import:
        # cloudpickle sends it by value.
        extra.append('--pickle_library=cloudpickle')
    options = PipelineOptions(list(argv) + extra)
    pipeline = beam.Pipeline(options=options)
    alerts, _ = rare_runcommand.build(pipeline, options)
    if probe_dir is not None:
        # Where the alerts were made: the pid of the process that ran the stage.
        (alerts
         | 'ProbePid' >> beam.Map(lambda _: str(os.getpid()))
         | 'DistinctPids' >> beam.Distinct()
         | 'WritePids' >> beam.io.WriteToText(os.path.join(str(probe_dir), 'pids')))
    if via_proto:
        proto_bytes = pipeline.to_runner_api().SerializeToString()
        proto = beam_runner_api_pb2.Pipeline.FromString(proto_bytes)
        pipeline = beam.Pipeline.from_runner_api(proto, pipeline.runner, options)
    result = pipeline.run()
    result.wait_until_finish()
    return read_alerts(output_dir), rare_runcommand.counters(result), read_pids(probe_dir)


def read_alerts(output_dir):
    lines = []
    for path in sorted(Path(output_dir).glob('alerts-*.jsonl')):
        lines.extend(path.read_text(encoding='utf-8').splitlines())
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines if line.strip())


def read_pids(probe_dir):
    if probe_dir is None:
        return set()
    pids = set()
    for path in Path(probe_dir).glob('pids*'):
        pids.update(int(line) for line in path.read_text().split())
    return pids


@pytest.fixture(scope='module')
def reference(input_args, tmp_path_factory):
    """The alerts of the in-process FnApiRunner, the reference of the other runs."""
    base = tmp_path_factory.mktemp('fnapi')
    alerts, counters, pids = run_detection(['--runner=' + IN_PROCESS_RUNNER] + input_args, base / 'out', base / 'probe')
    assert alerts, 'the input must raise alerts for the comparison to mean something'
    return alerts, counters, pids


def alert_keys(alerts):
    keys = []
    for text in alerts:
        result = json.loads(text)['QueryResult']
        keys.append((result['PowershellFileName'], result['VirtualMachineName'], result['Caller'],
                     result['ScriptFingerprintHash']))
    return sorted(keys)


def test_in_process_runner_raises_the_expected_alerts(reference, input_args):
    alerts, counters, pids = reference
    assert pids == {os.getpid()}, 'the in-memory FnApiRunner runs stages in the test process'
    assert counters['detection']['alerts'] == len(alerts)
    expected_path = SAMPLE_DIR / 'expected_alerts.jsonl'
    if input_args != ['--sample'] or not expected_path.exists():
        assert len(alerts) == 1
        return
    expected = [json.loads(line) for line in expected_path.read_text(encoding='utf-8').splitlines() if line]
    assert alert_keys(alerts) == sorted((row['PowershellFileName'], row['VirtualMachineName'], row['Caller'],
                                         row['ScriptFingerprintHash']) for row in expected)


def test_multi_processing_workers_raise_the_same_alerts(reference, input_args, tmp_path):
    alerts, counters, pids = run_detection(
        ['--runner=' + IN_PROCESS_RUNNER, '--direct_running_mode=multi_processing', '--direct_num_workers=2']
        + input_args, tmp_path / 'out', tmp_path / 'probe')
    assert alerts == reference[0]
    assert pids and os.getpid() not in pids, 'stages must run in SDK worker subprocesses, ran in %s' % pids
    assert counters.get('detection') == reference[1].get('detection')


def test_bundle_based_direct_runner_raises_the_same_alerts(reference, input_args, tmp_path):
    alerts, _, pids = run_detection(['--runner=BundleBasedDirectRunner'] + input_args, tmp_path / 'out',
                                    tmp_path / 'probe')
    assert alerts == reference[0]
    assert pids == {os.getpid()}


def test_pipeline_survives_its_portable_proto(reference, input_args, tmp_path):
    alerts, counters, _ = run_detection(['--runner=' + IN_PROCESS_RUNNER] + input_args, tmp_path / 'out',
                                        via_proto=True)
    assert alerts == reference[0]
    assert counters.get('detection') == reference[1].get('detection')


def test_portable_proto_names_every_stage_and_a_single_python_environment(input_args, tmp_path):
    """The proto a job server receives: the detection's stages by name, only Python SDK environments."""
    options = PipelineOptions(input_args + ['--output_dir=%s' % tmp_path])
    pipeline = beam.Pipeline(options=options)
    rare_runcommand.build(pipeline, options)
    proto = pipeline.to_runner_api()
    labels = {transform.unique_name for transform in proto.components.transforms.values()}
    for stage in ('DetectUniqueScripts', 'ToAlerts', 'WriteAlerts', 'WriteDeadLetters'):
        assert stage in labels
    for environment in proto.components.environments.values():
        assert environment.urn in ('beam:env:docker:v1', 'beam:env:process:v1', 'beam:env:external:v1',
                                   'beam:env:embedded_python:v1', 'beam:env:default:v1'), environment.urn
