"""The sinks of a run: the alerts to every sink chosen, the dead letters to files, counted per reason."""

import dataclasses

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.write.files import (ALERT_FILES, DEAD_LETTER_FILES, SENTINEL_DEAD_LETTER_FILES, WriteAvro,
                                    WriteJsonLines, alert_to_avro, avro_fields, dead_letter_to_avro, load_schema)
from transforms.write.gcp import write_bigquery, write_pubsub
from transforms.write.logs_ingestion import (DEFAULT_STREAM, DEFAULT_TIME_BUDGET, DEFAULT_TIMEOUT, DEFAULT_TOKEN_ENV,
                                             TokenSource, WriteToLogsIngestion)

FILE_SINKS = ('jsonl', 'avro')
SINKS = FILE_SINKS + ('sentinel', 'bigquery', 'pubsub')
DEAD_LETTER_REASONS = 'dead_letter_reasons'   # metrics namespace: one counter per reason


def parse_sinks(text):
    """``jsonl,avro`` -> ('jsonl', 'avro'); unknown names are a ValueError naming the valid ones."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in (text or '').split(',') if part.strip()))
    unknown = [name for name in names if name not in SINKS]
    if unknown or not names:
        raise ValueError('--sinks: unknown sink(s) %s; choose one or several of %s, comma-separated'
                         % (', '.join(map(repr, unknown)) or "''", ', '.join(SINKS)))
    return names


@dataclasses.dataclass(frozen=True)
class SinkSettings:
    """Which sinks receive the alerts, and the target of each (the sink options of the pipeline)."""

    sinks: tuple = ('jsonl',)
    dce_endpoint: str = None
    dcr_immutable_id: str = None
    dcr_stream_name: str = DEFAULT_STREAM
    token_file: str = None
    token_env: str = DEFAULT_TOKEN_ENV
    sentinel_gzip: bool = True
    sentinel_max_attempts: int = 5
    sentinel_timeout: float = DEFAULT_TIMEOUT
    sentinel_time_budget: float = DEFAULT_TIME_BUDGET
    bigquery_table: str = None
    pubsub_topic: str = None


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
                counted | 'Jsonl' >> WriteJsonLines(self._output_dir, DEAD_LETTER_FILES)
            else:
                counted | 'Avro' >> WriteAvro(self._output_dir, DEAD_LETTER_FILES, 'dead_letter.avsc',
                                              dead_letter_to_avro)
        return beam.pvalue.PDone(dead_letters.pipeline)


class WriteAlertSinks(beam.PTransform):
    """Alerts -> every sink of `settings` (files, Sentinel, BigQuery, Pub/Sub)."""

    def __init__(self, settings, output_dir):
        super().__init__()
        self._settings = settings
        self._output_dir = output_dir

    def expand(self, alerts):
        settings, output_dir = self._settings, self._output_dir
        if 'jsonl' in settings.sinks:
            alerts | 'Jsonl' >> WriteJsonLines(output_dir, ALERT_FILES)
        if 'avro' in settings.sinks:
            fields = avro_fields(load_schema('alert.avsc'))
            alerts | 'Avro' >> WriteAvro(output_dir, ALERT_FILES, 'alert.avsc',
                                         lambda alert: alert_to_avro(alert, fields))
        if 'sentinel' in settings.sinks:
            rejected = alerts | 'Sentinel' >> WriteToLogsIngestion(
                settings.dce_endpoint, settings.dcr_immutable_id,
                settings.dcr_stream_name, TokenSource(settings.token_file, settings.token_env),
                use_gzip=settings.sentinel_gzip, max_attempts=settings.sentinel_max_attempts,
                timeout=settings.sentinel_timeout, time_budget=settings.sentinel_time_budget)
            (rejected
             | 'CountSentinelRejects' >> beam.ParDo(_CountReasons('sentinel rejected: '))
             | 'SentinelDeadLetters' >> WriteJsonLines(output_dir, SENTINEL_DEAD_LETTER_FILES))
        if 'bigquery' in settings.sinks:
            write_bigquery(alerts | 'BigQueryGlobalWindow' >> beam.WindowInto(
                beam.transforms.window.GlobalWindows()), settings.bigquery_table)
        if 'pubsub' in settings.sinks:
            write_pubsub(alerts, settings.pubsub_topic)
        return beam.pvalue.PDone(alerts.pipeline)


def write_outputs(alerts, dead_letters, settings, output_dir):
    """Writes the alerts to every sink of `settings` and the dead letters to files; returns what was written.

    Stages ``WriteAlerts`` and ``WriteDeadLetters``. Dead letters go to ``dead_letter-*`` in the
    chosen file formats (JSON lines when no file sink is chosen); alerts that the Logs Ingestion API
    finally rejects go to ``sentinel_dead_letter-*.jsonl`` (whole alerts, for a replay). Returns
    ``{'alert_files': [globs], 'dead_letter_files': [globs]}``. Raises ValueError for a sink without
    its target, before anything runs.
    """
    formats = [name for name in FILE_SINKS if name in settings.sinks]
    dead_formats = formats or ['jsonl']
    dead_letters | 'WriteDeadLetters' >> WriteDeadLetterFiles(output_dir, dead_formats)
    alerts | 'WriteAlerts' >> WriteAlertSinks(settings, output_dir)
    written = {
        'alert_files': [FileSystems.join(output_dir, '%s-*.%s' % (ALERT_FILES, fmt)) for fmt in formats],
        'dead_letter_files': [FileSystems.join(output_dir, '%s-*.%s' % (DEAD_LETTER_FILES, fmt))
                              for fmt in dead_formats],
    }
    if 'sentinel' in settings.sinks:
        written['dead_letter_files'].append(
            FileSystems.join(output_dir, '%s-*.jsonl' % SENTINEL_DEAD_LETTER_FILES))
    return written
