"""File sinks (JSON lines, Avro) written atomically, published schemas consistent, optional GCP sinks."""

import glob
import http.server
import importlib
import importlib.util
import json
import os
import threading

import apache_beam as beam
import fastavro
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_testing import in_process_pipeline
from pipelines.sink_options import SinkOptions, sink_settings
from transforms.write import files, gcp, output_folder, sinks
from transforms.write.sinks import parse_sinks
from transforms.detect.alerts import make_alert, query_result
from transforms.detect.rule import RESULT_COLUMNS, load_rule
from pipelines.options import IN_PROCESS_RUNNER

RULE = load_rule()
DAY = 86_400_000_000


def result_row(n, cmdlets=('Get-Process',)):
    start = 3_600_000_000 + n * 60_000_000
    return {'StartTime': start, 'EndTime': start + 1000, 'PowershellFileName': 'script%d.ps1' % n,
            'VirtualMachineName': 'vm-%d' % n, 'Caller': 'bob@contoso.com', 'CallerIpAddress': '10.1.1.%d' % n,
            'PowershellScriptCommands': list(cmdlets), 'PowershellFileSize': 200 + n,
            'ScriptFingerprintHash': '%064x' % n, 'Prevalence': 25.0, 'Scope': '/subscriptions/s/vm-%d' % n}


WINDOW = ('1970-01-01T00:00:00.000000Z', '1970-01-02T00:00:00.000000Z')
ALERTS = [make_alert([query_result(result_row(n, ('Get-Item', '<script>alert(1)</script>')))], RULE, 'sentinel',
                     *WINDOW) for n in range(3)]
SINGLE = make_alert([query_result(result_row(7)), query_result(result_row(8))],
                    RULE.__class__(**{**RULE.__dict__, 'event_grouping': 'SingleAlert'}), 'sentinel', *WINDOW)
DEAD = [
    {'table': 'AzureActivity', 'source': '/x/a.jsonl', 'line': 3, 'offset': 120, 'reason': 'not JSON', 'raw': '{'},
    {'table': 'DeviceEvents', 'source': '/x/b.jsonl', 'line': 9, 'offset': 900, 'reason': 'not JSON', 'raw': 'x'},
    {'table': 'DeviceEvents', 'source': '/x/b.jsonl', 'line': 10, 'offset': 990, 'reason': 'late', 'raw': '{}'},
]


def options(*args):
    return PipelineOptions(['--runner=' + IN_PROCESS_RUNNER, *args])


def run_outputs(output_dir, *args, alerts=None):
    pipeline = in_process_pipeline(options(*args))
    written = sinks.write_outputs(pipeline | 'Alerts' >> beam.Create(alerts if alerts is not None else ALERTS),
                                  pipeline | 'Dead' >> beam.Create(DEAD), sink_settings(options(*args)),
                                  str(output_dir))
    result = pipeline.run()
    result.wait_until_finish()
    return written, result


def read_jsonl(pattern):
    return [json.loads(line) for path in sorted(glob.glob(pattern)) for line in open(path, encoding='utf-8')]


def read_avro(pattern):
    records = []
    for path in sorted(glob.glob(pattern)):
        with open(path, 'rb') as handle:
            reader = fastavro.reader(handle)
            assert reader.writer_schema['name'] in ('rare_runcommand.Alert', 'rare_runcommand.DeadLetter')
            records.extend(reader)
    return records


def test_parse_sinks():
    assert parse_sinks('jsonl, AVRO,jsonl') == ('jsonl', 'avro')
    with pytest.raises(ValueError, match="unknown sink\\(s\\) 'parquet'; choose one or several of jsonl, avro"):
        parse_sinks('jsonl,parquet')
    with pytest.raises(ValueError):
        parse_sinks('')
    settings = options('--sinks=avro', '--report=off', '--sentinel_gzip=off').view_as(SinkOptions)
    assert (settings.sinks, settings.report, settings.sentinel_gzip) == ('avro', False, False)
    assert options().view_as(SinkOptions).report is True


def test_the_on_off_options_survive_the_dictionary_a_worker_reads_its_options_from():
    """A worker rebuilds the pipeline's options with `PipelineOptions.from_dictionary`, which writes
    a true value as the flag alone."""
    for flags in ([], ['--report=on', '--sentinel_gzip=on']):
        rebuilt = PipelineOptions.from_dictionary(options(*flags).get_all_options()).view_as(SinkOptions)
        assert (rebuilt.report, rebuilt.sentinel_gzip) == (True, True)
    assert options('--report', '--sentinel_gzip').view_as(SinkOptions).report is True


def test_jsonl_and_avro_round_trip(tmp_path):
    written, result = run_outputs(tmp_path, '--sinks=jsonl,avro', alerts=ALERTS + [SINGLE])
    assert written['alert_files'] == [str(tmp_path / 'alerts-*.jsonl'), str(tmp_path / 'alerts-*.avro')]
    names = sorted(os.listdir(tmp_path))
    assert names == ['alerts-00000-of-00001.avro', 'alerts-00000-of-00001.jsonl',
                     'dead_letter-00000-of-00001.avro', 'dead_letter-00000-of-00001.jsonl']  # no beam-temp left
    expected = sorted(ALERTS + [SINGLE], key=lambda a: a['SystemAlertId'])
    assert sorted(read_jsonl(str(tmp_path / 'alerts-*.jsonl')), key=lambda a: a['SystemAlertId']) == expected
    avro = sorted(read_avro(str(tmp_path / 'alerts-*.avro')), key=lambda a: a['SystemAlertId'])
    for record, alert in zip(avro, expected):
        assert record == {**{'QueryResult': None, 'QueryResults': None}, **alert}
    assert list(avro[0]['QueryResult'] or avro[1]['QueryResult']) == list(RESULT_COLUMNS)
    dead_avro = sorted(read_avro(str(tmp_path / 'dead_letter-*.avro')), key=lambda d: d['position']['line'])
    assert dead_avro[0] == {'table': 'AzureActivity', 'source': '/x/a.jsonl', 'reason': 'not JSON', 'raw': '{',
                            'position': {'line': 3, 'offset': 120}}
    assert sorted(read_jsonl(str(tmp_path / 'dead_letter-*.jsonl')), key=lambda d: d['line']) == DEAD
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()['counters']
                if c.key.metric.namespace == sinks.DEAD_LETTER_REASONS}
    assert counters == {'not JSON': 2, 'late': 1}


def _explode(alert):
    if alert['QueryResult']['PowershellFileName'] == 'script2.ps1':
        raise RuntimeError('simulated worker failure')
    return alert


def test_failed_run_leaves_no_output_under_final_names(tmp_path):
    pipeline = in_process_pipeline(options('--sinks=jsonl'))
    alerts = pipeline | 'Alerts' >> beam.Create(ALERTS) | 'Explode' >> beam.Map(_explode)
    sinks.write_outputs(alerts, pipeline | 'Dead' >> beam.Create([]), sink_settings(options('--sinks=jsonl')),
                        str(tmp_path))
    with pytest.raises(Exception, match='simulated worker failure'):
        pipeline.run().wait_until_finish()
    assert glob.glob(str(tmp_path / 'alerts-*')) == []
    # Whatever is left is Beam's temporary folder, never a file under the final names.
    assert all(name.startswith('beam-temp-') or name.startswith('dead_letter-') for name in os.listdir(tmp_path))


def test_published_schemas_agree_with_the_alerts():
    alert_keys = [k for k in ALERTS[0] if k != 'QueryResult'] + ['QueryResult', 'QueryResults']
    avro = files.load_schema('alert.avsc')
    fastavro.parse_schema(avro)
    fastavro.parse_schema(files.load_schema('dead_letter.avsc'))
    assert [f['name'] for f in avro['fields']] == alert_keys
    row_fields = [f['name'] for f in avro['fields'][alert_keys.index('QueryResult')]['type'][1]['fields']]
    assert row_fields == list(RESULT_COLUMNS)
    dcr = files.load_schema('dcr_example.json')
    [(stream, declaration)] = dcr['properties']['streamDeclarations'].items()
    assert stream == 'Custom-RareRunCommandAlerts' and stream.startswith('Custom-')
    assert [c['name'] for c in declaration['columns']] == alert_keys
    table = files.load_schema('sentinel_custom_table.json')['properties']['schema']
    flow = dcr['properties']['dataFlows'][0]
    assert flow['streams'] == [stream] and flow['outputStream'] == 'Custom-' + table['name']
    assert table['name'] == 'RareRunCommandAlerts_CL'
    table_columns = [c['name'] for c in table['columns']]
    assert table_columns[0] == 'TimeGenerated'
    # Every table column is either a stream column or one the transformation computes.
    for column in table_columns:
        assert column in alert_keys or (column + ' =') in flow['transformKql'], column
    stream_types = {c['name']: c['type'] for c in declaration['columns']}
    assert all(stream_types[c['name']] == c['type'] for c in table['columns'] if c['name'] in stream_types)
    assert [f['name'] for f in files.load_schema('bigquery_alerts.json')['fields']] == alert_keys


def test_bigquery_row_and_pubsub_attributes():
    row = gcp.bigquery_row(ALERTS[0])
    assert row['Tactics'] == ['LateralMovement', 'Execution']
    assert json.loads(row['QueryResult']) == ALERTS[0]['QueryResult'] and row['QueryResults'] is None
    assert json.loads(row['Entities'])[0]['Type'] == 'account'
    attributes = gcp.pubsub_attributes(ALERTS[0])
    assert attributes['SystemAlertId'] == ALERTS[0]['SystemAlertId'] and attributes['AlertSeverity'] == 'Medium'


def _has(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _construct(*args):
    pipeline = beam.Pipeline(options=options(*args))
    sinks.write_outputs(pipeline | 'Alerts' >> beam.Create(ALERTS), pipeline | 'Dead' >> beam.Create([]),
                        sink_settings(options(*args)), '/nonexistent-output')
    labels = set()

    def visit(node):
        labels.add(node.full_label)
        for part in node.parts:
            visit(part)
    visit(pipeline.transforms_stack[0])
    return labels, pipeline


def test_pubsub_sink_constructs(monkeypatch):
    if not _has('google.cloud.pubsub'):
        with pytest.raises(RuntimeError, match=r"pip install 'rare-runcommand-detection\[gcp\]'"):
            _construct('--sinks=pubsub', '--pubsub_topic=projects/my-project/topics/alerts')
        try:
            importlib.import_module('apache_beam.io.gcp.pubsub')
        except ImportError:
            pytest.skip("Beam's Pub/Sub module does not import without the gcp extra")
        # Beam's module imports without the client library: check the graph construction anyway.
        monkeypatch.setattr(gcp, '_gcp_available', lambda module: True)
    labels, _ = _construct('--sinks=pubsub', '--pubsub_topic=projects/my-project/topics/alerts')
    assert 'WriteAlerts' in labels and 'WriteDeadLetters' in labels
    assert 'WriteAlerts/WritePubSub' in labels and 'WriteAlerts/ToPubSubMessage' in labels


@pytest.mark.skipif(not _has('google.cloud.bigquery'), reason="the gcp extra (google-cloud-bigquery) is absent")
def test_bigquery_sink_constructs():
    labels, _ = _construct('--sinks=bigquery', '--bigquery_table=my-project:security.rare_runcommand_alerts')
    assert 'WriteAlerts/WriteBigQuery' in labels


def test_gcp_sinks_need_their_target():
    with pytest.raises(ValueError, match='--pubsub_topic'):
        _construct('--sinks=pubsub')
    with pytest.raises((ValueError, RuntimeError), match='--bigquery_table|gcp'):
        _construct('--sinks=bigquery')


def test_sentinel_rejects_go_to_their_own_dead_letter_file_after_max_attempts(tmp_path, monkeypatch):
    for name in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('TEST_SINKS_TOKEN', 'tok')
    seen = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append(self.headers.get('Authorization'))
            self.rfile.read(int(self.headers['Content-Length']))
            self.send_response(503)
            self.send_header('Retry-After', '0')   # retried at once: the test waits for nothing
            self.send_header('Content-Length', '0')
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
    thread.start()
    try:
        _, result = run_outputs(
            tmp_path, '--sinks=sentinel', '--dce_endpoint=http://127.0.0.1:%d' % server.server_address[1],
            '--dcr_immutable_id=dcr-1', '--token_env=TEST_SINKS_TOKEN', '--sentinel_max_attempts=2')
    finally:
        server.shutdown()
        server.server_close()
    # --sentinel_max_attempts=2 (the default is 5): two calls for the one batch, then its alerts are rejected.
    assert seen == ['Bearer tok', 'Bearer tok']
    rejected = read_jsonl(str(tmp_path / 'sentinel_dead_letter-*.jsonl'))
    assert sorted(r['SystemAlertId'] for r in rejected) == sorted(a['SystemAlertId'] for a in ALERTS)
    assert all(r['status'] == 503 and r['attempts'] == 2 and r['alert'] in ALERTS for r in rejected)
    assert {r['reason'] for r in rejected} == {'HTTP 503 (gave up after 2 attempts)'}
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()['counters']
                if c.key.metric.namespace == sinks.DEAD_LETTER_REASONS}
    assert counters['sentinel rejected: HTTP 503'] == 3
    assert sorted(os.listdir(tmp_path)) == ['dead_letter-00000-of-00001.jsonl',
                                            'sentinel_dead_letter-00000-of-00001.jsonl']


def test_sink_settings_come_from_the_sink_options():
    settings = sink_settings(options('--sinks=sentinel,AVRO', '--dce_endpoint=https://dce.example', '--dcr_immutable_id=dcr-9',
                                     '--dcr_stream_name=Custom-X', '--token_file=/run/token', '--token_env=TOKEN',
                                     '--sentinel_gzip=off', '--sentinel_max_attempts=7', '--bigquery_table=p:d.t',
                                     '--pubsub_topic=projects/p/topics/t'))
    assert settings == sinks.SinkSettings(
        sinks=('sentinel', 'avro'), dce_endpoint='https://dce.example', dcr_immutable_id='dcr-9',
        dcr_stream_name='Custom-X', token_file='/run/token', token_env='TOKEN', sentinel_gzip=False,
        sentinel_max_attempts=7, bigquery_table='p:d.t', pubsub_topic='projects/p/topics/t')
    assert sink_settings(options()) == sinks.SinkSettings()


def test_a_rerun_replaces_every_output_series_of_the_previous_run_and_nothing_else(tmp_path):
    ours = ['alerts-00000-of-00002.jsonl', 'alerts-00001-of-00002.avro', 'dead_letter-00000-of-00003.avro',
            'dead_letter-00002-of-00003.jsonl', 'sentinel_dead_letter-00000-of-00001.jsonl',
            'windows-00001-of-00002.jsonl', 'summary.json', 'report.html']
    not_ours = ['alerts.jsonl', 'notes.txt', 'windows-latest.jsonl', 'fingerprints-00000-of-00001.jsonl']
    for name in ours + not_ours:
        (tmp_path / name).write_text('{}\n')
    patterns = files.previous_run_patterns(str(tmp_path))
    assert os.path.basename(patterns[0]) == 'summary.json'   # the completion marker goes first
    staging = tmp_path / '.rare-runcommand-run-1'
    staging.mkdir()
    (staging / 'alerts-00000-of-00001.jsonl').write_text('{"new": 1}\n')
    output_folder.publish(str(tmp_path), str(staging))
    assert sorted(os.listdir(tmp_path)) == sorted(not_ours + ['alerts-00000-of-00001.jsonl'])


def test_json_lines_files_take_five_transforms_and_write_one_empty_shard_for_no_records(tmp_path):
    pipeline = in_process_pipeline(options('--sinks=jsonl'))
    _ = pipeline | 'Nothing' >> beam.Create([]) | 'Write' >> files.WriteJsonLines(str(tmp_path), 'empty')
    _ = (pipeline | 'Some' >> beam.Create([{'a': 'é'}, {'b': [1, None]}])
         | 'WriteSome' >> files.WriteJsonLines(str(tmp_path), 'some'))

    class Leaves(beam.pipeline.PipelineVisitor):
        labels = []

        def visit_transform(self, node):
            self.labels.append(node.full_label)

    visitor = Leaves()
    pipeline.visit(visitor)
    assert len([label for label in visitor.labels if label.startswith('Write/')]) == 5
    pipeline.run().wait_until_finish()
    assert sorted(os.listdir(tmp_path)) == ['empty-00000-of-00001.jsonl', 'some-00000-of-00001.jsonl']
    assert (tmp_path / 'empty-00000-of-00001.jsonl').read_bytes() == b''
    assert sorted((tmp_path / 'some-00000-of-00001.jsonl').read_text(encoding='utf-8').splitlines()) == [
        '{"a":"é"}', '{"b":[1,null]}']
