"""Alerts: the query's result rows, shaped like Sentinel's SecurityAlert.

The result row keeps exactly the 14 columns of the query's final ``project`` (``QueryResult``);
the alert around it carries the rule's metadata, its entities (from the rule's entity mappings),
the query window and a deterministic ``SystemAlertId``.

Identity: ``SystemAlertId`` is ``uuid5(ALERT_ID_NAMESPACE, [rule id, semantics, window start, window
end, row identity])`` where the row identity is the canonical JSON of the result row without
``Prevalence`` (a statistic of the whole window, not of the row), or the sorted identities of all the
window's rows for a ``SingleAlert``. Nothing else (run time, runner, sharding, window function) enters
it, so a rerun, or an overlapping (sliding-window) backfill that evaluates the same window, gives
the same ids and downstream can deduplicate on them.

Trigger and grouping (Sentinel's "Alert threshold" and "Event grouping"): a window raises alerts
only when its number of result rows satisfies ``triggerOperator``/``triggerThreshold``; then
``AlertPerResult`` makes one alert per row (``QueryResult``) and ``SingleAlert`` one alert for the
window carrying all its rows (``QueryResults``, in canonical order). A window without any result
row has no element in Beam and raises nothing, whatever the operator (``lt``/``eq 0`` never fire).
"""

import uuid

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.detect import kql
from transforms.detect.query import DETECTION
from transforms.detect.rule import RESULT_COLUMNS
from transforms.detect.windows import CountPerWindow, window_label
from transforms.read.dynamic import canonical_json
from transforms.read.ingest import format_datetime_us

ALERTS = 'alerts'  # the alerts of a run, wherever a collection of them is named
PROVIDER_NAME = 'rare-runcommand-beam'
# Namespace of the alert ids (uuid5): ids depend only on rule, semantics, window and result rows.
ALERT_ID_NAMESPACE = uuid.UUID('6f0c3a52-4d8e-5b7a-9c1d-2e3f4a5b6c7d')
# Columns left out of a row's identity: statistics of the window rather than facts of the row.
NON_IDENTITY_COLUMNS = ('Prevalence',)
# Metrics namespace of the per-window alert counts (counter name: "<QueryPeriodStart>/<QueryPeriodEnd>").
ALERTS_PER_WINDOW = 'alerts_per_window'


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


def row_identity(result):
    """The canonical text identifying a result row (its columns but the window statistics)."""
    return canonical_json({k: v for k, v in result.items() if k not in NON_IDENTITY_COLUMNS})


def entities(result, rule):
    """Sentinel-style entities of one result row from the rule's entity mappings (empty identifiers left out)."""
    found = []
    for entity_type, fields in rule.entity_mappings:
        entity = {}
        for identifier, column in fields:
            value = result.get(column)
            if value not in (None, ''):
                entity[identifier] = value if isinstance(value, str) else kql.tostring_dynamic(value)
        if entity:
            found.append({'Type': entity_type.lower(), **entity})
    return found


def alert_entities(results, rule):
    """The distinct entities of all the alert's rows, numbered ``$id`` 1, 2, ... in first-seen order."""
    seen, found = set(), []
    for result in results:
        for entity in entities(result, rule):
            key = canonical_json(entity)
            if key not in seen:
                seen.add(key)
                found.append({'$id': str(len(found) + 1), **entity})
    return found


def alert_id(rule, semantics_name, window_start, window_end, identity):
    """uuid5 of the unambiguous JSON encoding of (rule id, semantics, window, row identity)."""
    name = canonical_json([rule.id, semantics_name, window_start, window_end, identity])
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, name))


def _bound(values, pick):
    present = [v for v in values if v is not None]
    return pick(present) if present else None


def make_alert(results, rule, semantics_name, window_start, window_end, grouping=None):
    """One alert for one result row (AlertPerResult) or for all of a window's rows (SingleAlert)."""
    grouping = grouping or rule.event_grouping
    if grouping == 'AlertPerResult' and len(results) != 1:
        raise ValueError('an AlertPerResult alert carries exactly one result row')
    ordered = sorted(results, key=row_identity)
    identity = '\n'.join(row_identity(r) for r in ordered)
    alert = {
        'AlertName': rule.name,
        'AlertSeverity': rule.severity,
        'Description': rule.description,
        'AlertType': rule.id,
        'ProviderName': PROVIDER_NAME,
        'SystemAlertId': alert_id(rule, semantics_name, window_start, window_end, identity),
        'StartTime': _bound((r['StartTime'] for r in results), min),
        'EndTime': _bound((r['EndTime'] for r in results), max),
        'Tactics': list(rule.tactics),
        'Techniques': list(rule.techniques),
        'Entities': alert_entities(ordered, rule),
        'Semantics': semantics_name,
        'QueryPeriodStart': window_start,
        'QueryPeriodEnd': window_end,
    }
    if grouping == 'AlertPerResult':
        alert['QueryResult'] = results[0]
    else:
        alert['QueryResults'] = ordered
    return alert


def window_alerts(results, rule, semantics_name, window):
    """The alerts of one window's result rows (`query_result` rows): none unless the rule's trigger
    holds for their number, then one per row (AlertPerResult) or one for all (SingleAlert)."""
    if not results or not rule.triggers(len(results)):
        return []
    start, end = window_label(window)
    if rule.event_grouping == 'SingleAlert':
        return [make_alert(results, rule, semantics_name, start, end, 'SingleAlert')]
    return [make_alert([result], rule, semantics_name, start, end, 'AlertPerResult') for result in results]


def _count_alert(alert):
    Metrics.counter(DETECTION, 'alerts').inc()
    Metrics.counter(ALERTS_PER_WINDOW, '%s/%s' % (alert['QueryPeriodStart'], alert['QueryPeriodEnd'])).inc()


class _AlertPerResult(beam.DoFn):
    def __init__(self, rule, semantics_name):
        self._rule = rule
        self._semantics_name = semantics_name

    def process(self, window_row, result_counts):
        window, row = window_row
        if not self._rule.triggers(result_counts[window]):
            return
        start, end = window_label(window)
        alert = make_alert([query_result(row)], self._rule, self._semantics_name, start, end, 'AlertPerResult')
        _count_alert(alert)
        yield alert


class _SingleAlertPerWindow(beam.DoFn):
    def __init__(self, rule, semantics_name):
        self._rule = rule
        self._semantics_name = semantics_name

    def process(self, window_rows):
        window, rows = window_rows
        for alert in window_alerts([query_result(row) for row in rows], self._rule, self._semantics_name, window):
            _count_alert(alert)
            yield alert


class ToAlerts(beam.PTransform):
    """(window, result row) -> alerts, applying the rule's trigger and event grouping per window."""

    def __init__(self, rule, semantics_name):
        super().__init__()
        self._rule = rule
        self._semantics_name = semantics_name

    def expand(self, results):
        if self._rule.event_grouping == 'SingleAlert':
            return (
                results
                | 'GroupWindowResults' >> beam.GroupByKey()
                | 'MakeWindowAlert' >> beam.ParDo(_SingleAlertPerWindow(self._rule, self._semantics_name)))
        results_per_window = results | 'CountResultsPerWindow' >> CountPerWindow()
        return results | 'MakeAlert' >> beam.ParDo(
            _AlertPerResult(self._rule, self._semantics_name), beam.pvalue.AsDict(results_per_window))
