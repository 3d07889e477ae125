"""Google Cloud sinks of the alerts (the optional ``gcp`` extra): BigQuery and Pub/Sub."""

import importlib
import importlib.util
import json

import apache_beam as beam

from transforms.write.files import load_schema, to_json_line

_GCP_HINT = "the %s sink needs Beam's Google Cloud I/O: pip install 'rare-runcommand-detection[gcp]'"


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
