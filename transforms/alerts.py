"""Alerts: the query's result rows, shaped like Sentinel's SecurityAlert.

The result row keeps exactly the 14 columns of the query's final ``project`` (``QueryResult``);
the alert around it carries the rule's metadata, its entities (from the rule's entity mappings),
the query window and a deterministic ``SystemAlertId``.
"""

import uuid

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import kql
from transforms.fingerprints import canonical_row_text
from transforms.ingest import format_datetime_us
from transforms.rule import RESULT_COLUMNS
from transforms.windows import window_label

PROVIDER_NAME = 'rare-runcommand-beam'
# Namespace of the alert ids (uuid5): ids depend only on rule, semantics, window and result row.
ALERT_ID_NAMESPACE = uuid.UUID('6f0c3a52-4d8e-5b7a-9c1d-2e3f4a5b6c7d')


def _datetime(micros):
    return None if micros is None else format_datetime_us(micros)


def query_result(row):
    """The 14 projected columns of a result row, in projection order, as JSON-ready values."""
    caller_name, caller_upn_suffix = kql.split_caller(row['Caller'])
    values = {
        'timestamp': _datetime(row['StartTime']),
        'StartTime': _datetime(row['StartTime']),
        'EndTime': _datetime(row['EndTime']),
        'PowershellFileName': row['PowershellFileName'],
        'VirtualMachineName': row['VirtualMachineName'],
        'Caller': row['Caller'],
        'CallerName': caller_name,
        'CallerUPNSuffix': caller_upn_suffix,
        'CallerIpAddress': row['CallerIpAddress'],
        'PowershellScriptCommands': list(row['PowershellScriptCommands']),
        'PowershellFileSize': row['PowershellFileSize'],
        'ScriptFingerprintHash': row['ScriptFingerprintHash'],
        'Prevalence': row['Prevalence'],
        'Scope': row['Scope'],
    }
    return {column: values[column] for column in RESULT_COLUMNS}


def entities(result, rule):
    """Sentinel-style entities from the rule's entity mappings (empty identifiers left out)."""
    found = []
    for entity_type, fields in rule.entity_mappings:
        entity = {}
        for identifier, column in fields:
            value = result.get(column)
            if value not in (None, ''):
                entity[identifier] = value if isinstance(value, str) else kql.tostring_dynamic(value)
        if entity:
            found.append({'$id': str(len(found) + 1), 'Type': entity_type.lower(), **entity})
    return found


def alert_id(rule, semantics_name, window_start, window_end, identity):
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, '|'.join((rule.id, semantics_name, window_start, window_end, identity))))


def make_alert(results, rule, semantics_name, window_start, window_end):
    """One alert for one result row (AlertPerResult) or for all of a window's rows (SingleAlert)."""
    first = results[0]
    identity = '\n'.join(sorted(canonical_row_text(r) for r in results))
    alert = {
        'AlertName': rule.name,
        'AlertSeverity': rule.severity,
        'Description': rule.description,
        'AlertType': rule.id,
        'ProviderName': PROVIDER_NAME,
        'SystemAlertId': alert_id(rule, semantics_name, window_start, window_end, identity),
        'StartTime': min(r['StartTime'] for r in results),
        'EndTime': max(r['EndTime'] for r in results),
        'Tactics': list(rule.tactics),
        'Techniques': list(rule.techniques),
        'Entities': entities(first, rule) if len(results) == 1 else [
            e for r in results for e in entities(r, rule)],
        'Semantics': semantics_name,
        'QueryPeriodStart': window_start,
        'QueryPeriodEnd': window_end,
    }
    if len(results) == 1 and rule.event_grouping == 'AlertPerResult':
        alert['QueryResult'] = first
    else:
        alert['QueryResults'] = sorted(results, key=canonical_row_text)
    return alert


class _AlertPerResult(beam.DoFn):
    def __init__(self, rule, semantics_name):
        self._rule = rule
        self._semantics_name = semantics_name
        self._alerts = Metrics.counter('detection', 'alerts')

    def process(self, row, result_count, beam_window=beam.DoFn.WindowParam):
        if not self._rule.triggers(result_count):
            return
        start, end = window_label(beam_window)
        self._alerts.inc()
        yield make_alert([query_result(row)], self._rule, self._semantics_name, start, end)


class _SingleAlertPerWindow(beam.DoFn):
    def __init__(self, rule, semantics_name):
        self._rule = rule
        self._semantics_name = semantics_name
        self._alerts = Metrics.counter('detection', 'alerts')

    def process(self, keyed_rows, beam_window=beam.DoFn.WindowParam):
        _, rows = keyed_rows
        results = [query_result(row) for row in rows]
        if not self._rule.triggers(len(results)):
            return
        start, end = window_label(beam_window)
        self._alerts.inc()
        yield make_alert(results, self._rule, self._semantics_name, start, end)


class ToAlerts(beam.PTransform):
    """Result rows of each window -> alerts, applying the rule's trigger and event grouping."""

    def __init__(self, rule, semantics_name):
        super().__init__()
        self._rule = rule
        self._semantics_name = semantics_name

    def expand(self, results):
        if self._rule.event_grouping == 'SingleAlert':
            return (
                results
                | 'KeyByWindow' >> beam.Map(lambda row: (0, row))
                | 'GroupWindowResults' >> beam.GroupByKey()
                | 'MakeWindowAlert' >> beam.ParDo(_SingleAlertPerWindow(self._rule, self._semantics_name)))
        result_count = results | 'CountResults' >> beam.CombineGlobally(
            beam.combiners.CountCombineFn()).without_defaults()
        return results | 'MakeAlert' >> beam.ParDo(
            _AlertPerResult(self._rule, self._semantics_name), beam.pvalue.AsSingleton(result_count))
