"""Pipeline options of the outputs: which sinks, the Sentinel (Logs Ingestion API), BigQuery and Pub/Sub targets, the report."""

import dataclasses

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.write.logs_ingestion import DEFAULT_STREAM, DEFAULT_TIME_BUDGET, DEFAULT_TIMEOUT, DEFAULT_TOKEN_ENV
from transforms.write.sinks import SINKS, SinkSettings, parse_sinks


# The on/off options take their value as an argument; alone (how Beam's
# `PipelineOptions.from_dictionary` writes a true value when a worker reads the pipeline's options
# with this module imported) they mean on.
def _on_off(text):
    value = str(text).strip().lower()
    if value in ('on', 'true', 'yes', '1'):
        return True
    if value in ('off', 'false', 'no', '0'):
        return False
    raise ValueError('expected on or off, got %r' % text)


class SinkOptions(PipelineOptions):
    """Where the alerts go (``--sinks``) and the settings of each sink."""

    @classmethod
    def _add_argparse_args(cls, parser):
        sinks = parser.add_argument_group('sinks')
        sinks.add_argument(
            '--sinks', default='jsonl',
            help='Comma-separated sinks of the alerts: %s (default jsonl). jsonl/avro write '
                 'alerts-SSSSS-of-NNNNN.{jsonl,avro} under --output_dir (atomically: temporary files renamed '
                 'at the end); dead letters always go to files there. See docs/outputs.md.' % ', '.join(SINKS))
        sinks.add_argument(
            '--dce_endpoint', default=None,
            help='sentinel: logs ingestion URL of the data collection endpoint, '
                 'e.g. https://my-dce-abcd.westeurope-1.ingest.monitor.azure.com')
        sinks.add_argument(
            '--dcr_immutable_id', default=None, help='sentinel: immutableId of the DCR (dcr-...).')
        sinks.add_argument(
            '--dcr_stream_name', default=DEFAULT_STREAM,
            help='sentinel: stream declared in the DCR (default %s).' % DEFAULT_STREAM)
        sinks.add_argument(
            '--token_file', default=None,
            help='sentinel: file (local or gs://) holding the bearer token for https://monitor.azure.com; '
                 're-read before every call. Default: the environment variable named by --token_env.')
        sinks.add_argument(
            '--token_env', default=DEFAULT_TOKEN_ENV,
            help='sentinel: environment variable holding the bearer token (default %s).' % DEFAULT_TOKEN_ENV)
        sinks.add_argument(
            '--sentinel_gzip', type=_on_off, nargs='?', const=True, default=True,
            help='sentinel: gzip the request bodies (on/off, default on).')
        sinks.add_argument(
            '--sentinel_max_attempts', type=int, default=5,
            help='sentinel: calls per batch at most, retries of 408, 429, 500, 502, 503 and 504 included '
                 '(default 5).')
        sinks.add_argument(
            '--sentinel_timeout', type=float, default=DEFAULT_TIMEOUT,
            help='sentinel: seconds one call may take in all, connecting and reading the answer included '
                 '(default %.0f); a call past it is cut off and retried.' % DEFAULT_TIMEOUT)
        sinks.add_argument(
            '--sentinel_time_budget', type=float, default=DEFAULT_TIME_BUDGET,
            help='sentinel: seconds all the calls and retry waits of one bundle of alerts may take (default '
                 '%.0f); past it the alerts left go to sentinel_dead_letter unsent.' % DEFAULT_TIME_BUDGET)
        sinks.add_argument(
            '--bigquery_table', default=None,
            help='bigquery: PROJECT:DATASET.TABLE (created if needed, appended to); needs the gcp extra.')
        sinks.add_argument(
            '--pubsub_topic', default=None,
            help='pubsub: projects/PROJECT/topics/TOPIC; one JSON message per alert; needs the gcp extra.')
        sinks.add_argument(
            '--report', type=_on_off, nargs='?', const=True, default=True,
            help='on/off (default on): write summary.json and report.html under --output_dir after the run.')


def sink_settings(options):
    """The `SinkSettings` of parsed pipeline options; a ValueError for an unknown sink name."""
    view = options.view_as(SinkOptions)
    values = {field.name: getattr(view, field.name) for field in dataclasses.fields(SinkSettings)}
    return SinkSettings(**dict(values, sinks=parse_sinks(view.sinks)))
