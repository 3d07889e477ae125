"""Sinks of alerts and dead letters: JSON lines, Avro, Sentinel (Logs Ingestion API), BigQuery, Pub/Sub.

File sinks (``jsonl``, ``avro``) go through Beam's ``FileBasedSink``: every bundle writes a temporary
file under ``<output_dir>/beam-temp-<prefix>-<uuid>/``; only when all bundles have succeeded does
``finalize_write`` rename them to ``<prefix>-SSSSS-of-NNNNN.<ext>`` and delete the temporary folder.
A run that fails before that leaves no file under the final names (at most a ``beam-temp-*``
folder), and a run interrupted during the renames leaves an incomplete ``-of-NNNNN`` series,
which is visible as such. ``summary.json`` (run report) is written after the pipeline succeeded: its
presence marks a complete output folder. Before a run starts, `clear_previous_run` deletes what an
earlier run wrote to the same folder (its series may have had another number of shards, which this
run's renames would not replace).
"""

import importlib
import importlib.util
import json
import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

import schemas

SCHEMA_DIR = os.path.dirname(os.path.abspath(schemas.__file__))
SHARD_TEMPLATE = '-SSSSS-of-NNNNN'
DEAD_LETTER_REASONS = 'dead_letter_reasons'   # metrics namespace: one counter per reason
_DEAD_LETTER_FIELDS = ('table', 'source', 'reason', 'raw')
_GCP_HINT = "the %s sink needs Beam's Google Cloud I/O: pip install 'rare-runcommand-detection[gcp]'"


OUTPUT_PREFIXES = ('alerts', 'dead_letter', 'sentinel_dead_letter', 'windows')
RUN_REPORT_FILES = ('summary.json', 'report.html')


def previous_run_patterns(output_dir):
    """Globs of everything a run writes under `output_dir`, the completion marker first."""
    patterns = [FileSystems.join(output_dir, name) for name in RUN_REPORT_FILES]
    patterns += [FileSystems.join(output_dir, prefix + '-*-of-*.' + ext)
                 for prefix in OUTPUT_PREFIXES for ext in ('jsonl', 'avro')]
    return patterns


def clear_previous_run(output_dir, extra_patterns=()):
    """Deletes the files of an earlier run in `output_dir` (and `extra_patterns`); returns their paths.

    ``summary.json`` goes first: a folder without it is never taken for a complete run's.
    """
    deleted = []
    for pattern in previous_run_patterns(output_dir) + list(extra_patterns):
        paths = [metadata.path for metadata in FileSystems.match([pattern])[0].metadata_list]
        if paths:
            FileSystems.delete(paths)
            deleted.extend(paths)
    return deleted


def schema_path(name):
    """Path of a published schema file (``alert.avsc``, ``dcr_example.json``, ...)."""
    return os.path.join(SCHEMA_DIR, name)


def load_schema(name):
    with open(schema_path(name), encoding='utf-8') as handle:
        return json.load(handle)


def to_json_line(record):
    return json.dumps(record, ensure_ascii=False, separators=(',', ':'))


class WriteJsonLines(beam.PTransform):
    """Records -> ``<output_dir>/<prefix>-SSSSS-of-NNNNN.jsonl`` (written to temporary files, then renamed)."""

    def __init__(self, output_dir, prefix):
        super().__init__()
        self._path = FileSystems.join(output_dir, prefix)

    def expand(self, records):
        return (
            records
            | 'GlobalWindow' >> beam.WindowInto(beam.transforms.window.GlobalWindows())
            | 'ToJsonLine' >> beam.Map(to_json_line)
            | 'WriteFiles' >> beam.io.WriteToText(self._path, file_name_suffix='.jsonl',
                                                  shard_name_template=SHARD_TEMPLATE))


# --- Avro ---------------------------------------------------------------------------------------

def _avro_fields(schema):
    return [field['name'] for field in schema['fields']]


def alert_to_avro(alert, fields=None):
    """An alert dict as a record of ``schemas/alert.avsc`` (absent optional fields as null)."""
    fields = fields or _avro_fields(load_schema('alert.avsc'))
    record = {name: alert.get(name) for name in fields}
    record['Entities'] = [{k: v if isinstance(v, str) else json.dumps(v) for k, v in entity.items()}
                          for entity in alert.get('Entities') or ()]
    record['Tactics'] = list(alert.get('Tactics') or ())
    record['Techniques'] = list(alert.get('Techniques') or ())
    return record


def dead_letter_to_avro(record):
    """A dead letter as a record of ``schemas/dead_letter.avsc``: where it was goes to ``position``."""
    position = {}
    for key, value in record.items():
        if key in _DEAD_LETTER_FIELDS:
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            position[key] = value
        else:
            position[key] = json.dumps(value, ensure_ascii=False)
    out = {key: record.get(key) for key in _DEAD_LETTER_FIELDS}
    for key in _DEAD_LETTER_FIELDS:
        if out[key] is not None and not isinstance(out[key], str):
            out[key] = str(out[key])
    out['position'] = position
    return out


class WriteAvro(beam.PTransform):
    """Records -> ``<output_dir>/<prefix>-SSSSS-of-NNNNN.avro`` with a schema of ``schemas/`` (atomic like jsonl)."""

    def __init__(self, output_dir, prefix, schema_name, convert):
        super().__init__()
        self._path = FileSystems.join(output_dir, prefix)
        self._schema = load_schema(schema_name)
        self._convert = convert

    def expand(self, records):
        return (
            records
            | 'GlobalWindow' >> beam.WindowInto(beam.transforms.window.GlobalWindows())
            | 'ToAvroRecord' >> beam.Map(self._convert)
            | 'WriteFiles' >> beam.io.WriteToAvro(self._path, schema=self._schema, file_name_suffix='.avro',
                                                  shard_name_template=SHARD_TEMPLATE))


# --- BigQuery and Pub/Sub (optional gcp extra) ---------------------------------------------------

def bigquery_row(alert):
    """An alert as a row of ``schemas/bigquery_alerts.json`` (nested values as JSON text)."""
    row = {}
    for field in load_schema('bigquery_alerts.json')['fields']:
        name = field['name']
        value = alert.get(name)
        if field['mode'] == 'REPEATED':
            value = list(value or ())
        elif value is not None and not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False, separators=(',', ':'))
        row[name] = value
    return row


def pubsub_attributes(alert):
    """Message attributes of an alert (SystemAlertId first: subscribers deduplicate on it)."""
    return {key: str(alert[key]) for key in ('SystemAlertId', 'AlertType', 'AlertSeverity', 'Semantics',
                                            'QueryPeriodStart', 'QueryPeriodEnd') if alert.get(key) is not None}


def _gcp_available(module):
    """Whether a Google Cloud client library is installed (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _require_gcp(sink, client_module, beam_module):
    """Beam's I/O module of a GCP sink, imported only now; a clear error when the gcp extra is missing."""
    if not _gcp_available(client_module):
        raise RuntimeError(_GCP_HINT % sink)
    return importlib.import_module(beam_module)


def write_bigquery(alerts, table):
    """Alerts -> BigQuery table (``beam.io.WriteToBigQuery``, created if needed, appended)."""
    if not table:
        raise ValueError('the bigquery sink needs --bigquery_table PROJECT:DATASET.TABLE')
    _require_gcp('bigquery', 'google.cloud.bigquery', 'apache_beam.io.gcp.bigquery')
    return (
        alerts
        | 'ToBigQueryRow' >> beam.Map(bigquery_row)
        | 'WriteBigQuery' >> beam.io.WriteToBigQuery(
            table, schema=load_schema('bigquery_alerts.json'),
            create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
            write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND))


def write_pubsub(alerts, topic):
    """Alerts -> one JSON message each on a Pub/Sub topic (``beam.io.WriteToPubSub``), with attributes."""
    if not topic:
        raise ValueError('the pubsub sink needs --pubsub_topic projects/PROJECT/topics/TOPIC')
    pubsub = _require_gcp('pubsub', 'google.cloud.pubsub', 'apache_beam.io.gcp.pubsub')
    message = pubsub.PubsubMessage
    return (
        alerts
        | 'ToPubSubMessage' >> beam.Map(
            lambda alert: message(to_json_line(alert).encode('utf-8'), pubsub_attributes(alert)))
        | 'WritePubSub' >> pubsub.WriteToPubSub(topic, with_attributes=True))


# --- All outputs of a run -----------------------------------------------------------------------

class _CountReasons(beam.DoFn):
    """Counts dead letters per reason (metrics namespace ``dead_letter_reasons``) and passes them on."""

    def __init__(self, prefix=''):
        self._prefix = prefix

    def process(self, record):
        reason = record.get('reason') if isinstance(record, dict) else None
        if self._prefix and isinstance(record, dict):  # rejected alerts: by status, not by response text
            status = record.get('status')
            reason = ('HTTP %s' % status if status is not None
                      else 'too large' if str(reason).startswith('alert is') else 'no response')
        Metrics.counter(DEAD_LETTER_REASONS, self._prefix + str(reason or 'unknown')).inc()
        yield record


def _file_formats(sinks):
    return [name for name in ('jsonl', 'avro') if name in sinks]


class WriteDeadLetterFiles(beam.PTransform):
    """Dead letters -> ``dead_letter-*`` in each file format, counted per reason."""

    def __init__(self, output_dir, formats):
        super().__init__()
        self._output_dir = output_dir
        self._formats = formats

    def expand(self, dead_letters):
        counted = dead_letters | 'CountReasons' >> beam.ParDo(_CountReasons())
        for fmt in self._formats:
            if fmt == 'jsonl':
                counted | 'Jsonl' >> WriteJsonLines(self._output_dir, 'dead_letter')
            else:
                counted | 'Avro' >> WriteAvro(self._output_dir, 'dead_letter', 'dead_letter.avsc', dead_letter_to_avro)
        return beam.pvalue.PDone(dead_letters.pipeline)


class WriteAlertSinks(beam.PTransform):
    """Alerts -> every sink chosen (files, Sentinel, BigQuery, Pub/Sub)."""

    def __init__(self, settings, sinks, output_dir):
        super().__init__()
        self._settings = settings
        self._sinks = sinks
        self._output_dir = output_dir

    def expand(self, alerts):
        settings, sinks, output_dir = self._settings, self._sinks, self._output_dir
        if 'jsonl' in sinks:
            alerts | 'Jsonl' >> WriteJsonLines(output_dir, 'alerts')
        if 'avro' in sinks:
            fields = _avro_fields(load_schema('alert.avsc'))
            alerts | 'Avro' >> WriteAvro(output_dir, 'alerts', 'alert.avsc', lambda alert: alert_to_avro(alert, fields))
        if 'sentinel' in sinks:
            from transforms.write.logs_ingestion import TokenSource, WriteToLogsIngestion
            rejected = alerts | 'Sentinel' >> WriteToLogsIngestion(
                settings.dce_endpoint, settings.dcr_immutable_id, settings.dcr_stream_name,
                TokenSource(settings.token_file, settings.token_env), use_gzip=settings.sentinel_gzip,
                max_attempts=settings.sentinel_max_attempts)
            (rejected
             | 'CountSentinelRejects' >> beam.ParDo(_CountReasons('sentinel rejected: '))
             | 'SentinelDeadLetters' >> WriteJsonLines(output_dir, 'sentinel_dead_letter'))
        if 'bigquery' in sinks:
            write_bigquery(alerts | 'BigQueryGlobalWindow' >> beam.WindowInto(
                beam.transforms.window.GlobalWindows()), settings.bigquery_table)
        if 'pubsub' in sinks:
            write_pubsub(alerts, settings.pubsub_topic)
        return beam.pvalue.PDone(alerts.pipeline)


def write_outputs(alerts, dead_letters, options, output_dir):
    """Writes the alerts to every sink of ``--sinks`` and the dead letters to files; returns what was written.

    Stages ``WriteAlerts`` and ``WriteDeadLetters``. Dead letters go to ``dead_letter-*`` in the
    chosen file formats (JSON lines when no file sink is chosen); alerts that the Logs Ingestion API
    finally rejects go to ``sentinel_dead_letter-*.jsonl`` (whole alerts, for a replay). Returns
    ``{'alert_files': [globs], 'dead_letter_files': [globs]}``. Raises ValueError for an unknown sink
    or a sink without its target, before anything runs.
    """
    from pipelines.sink_options import SinkOptions, parse_sinks
    settings = options.view_as(SinkOptions)
    sinks = parse_sinks(settings.sinks)
    formats = _file_formats(sinks)
    dead_formats = formats or ['jsonl']
    dead_letters | 'WriteDeadLetters' >> WriteDeadLetterFiles(output_dir, dead_formats)
    alerts | 'WriteAlerts' >> WriteAlertSinks(settings, sinks, output_dir)
    written = {
        'alert_files': [FileSystems.join(output_dir, 'alerts-*.' + fmt) for fmt in formats],
        'dead_letter_files': [FileSystems.join(output_dir, 'dead_letter-*.' + fmt) for fmt in dead_formats],
    }
    if 'sentinel' in sinks:
        written['dead_letter_files'].append(FileSystems.join(output_dir, 'sentinel_dead_letter-*.jsonl'))
    return written
