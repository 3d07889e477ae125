"""History baseline ("new terms"): alert on a fingerprint only if it was not seen in the N days before
the window.

Inside one run, each window sees the fingerprints of the RunCommandData rows of the windows before
it. Across runs, a fingerprint store carries the history: one record per fingerprint with
``rule_id``, ``semantics``, ``fingerprint``, ``first_seen``, ``last_seen`` (ISO 8601), ``count`` (distinct
script runs seen) and one ``example`` (the run's VM, caller, file and cmdlets). The store is plain
JSON lines, or Avro when its path ends in ``.avro``; it is keyed by rule id and semantics, so a store
built for one cannot silently feed the other, and it is replaced only after a successful run
(written beside the target, then renamed over it: the old store is never deleted first, so a kill
at any moment leaves the old store or the new one). A store named by --baseline_in must exist
unless the run says it is the first (--baseline_init): a missing store read as empty would make
every known fingerprint new again.
"""

import uuid
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.detect.alerts import ALERTS
from transforms.read import bounded_json
from transforms.read.dynamic import canonical_json
from transforms.read.ingest import format_datetime_us, parse_datetime_us

SEEN = 'seen'
FINGERPRINT_FILES = 'fingerprints'  # this run's fingerprint summaries, under `temporary_dir`
US_PER_DAY = 86_400 * 1_000_000

STORE_SCHEMA = {
    'type': 'record', 'name': 'FingerprintBaseline', 'namespace': 'rare_runcommand',
    'fields': [
        {'name': 'rule_id', 'type': 'string'},
        {'name': 'semantics', 'type': 'string'},
        {'name': 'fingerprint', 'type': 'string'},
        {'name': 'first_seen', 'type': 'string'},
        {'name': 'last_seen', 'type': 'string'},
        {'name': 'count', 'type': 'long'},
        {'name': 'example', 'type': 'string', 'doc': 'JSON text of one script run'},
    ]}


class BaselineError(ValueError):
    """A fingerprint store that does not belong to this rule and semantics, or cannot be read."""


def check_store(path, first_run):
    """BaselineError when the store `path` does not exist and this is not declared the first run."""
    if path and not first_run and not FileSystems.exists(path):
        raise BaselineError('the fingerprint store %s does not exist; if this is the first run of the '
                            'baseline, say so with --baseline_init' % path)


def read_store(path, rule_id, semantics):
    """The records of a fingerprint store ([] when there is none); BaselineError if any belongs to
    another rule or semantics, or the store cannot be read."""
    if not path or not FileSystems.exists(path):
        return []
    try:
        with FileSystems.open(path) as handle:
            if path.endswith('.avro'):
                import fastavro
                records = [dict(r, example=bounded_json.loads(r['example'])) for r in fastavro.reader(handle)]
            else:
                records = [bounded_json.loads(line) for line in handle.read().decode('utf-8').splitlines()
                           if line.strip()]
    except (ValueError, TypeError, KeyError, EOFError, UnicodeDecodeError) as error:
        raise BaselineError('%s is not a fingerprint store: %s' % (path, error)) from error
    for record in records:
        if not isinstance(record, dict):
            raise BaselineError('%s is not a fingerprint store: a record is not an object' % path)
        if record.get('rule_id') != rule_id or record.get('semantics') != semantics:
            raise BaselineError(
                '%s holds fingerprints of rule %s with %s semantics; this run is rule %s with %s semantics'
                % (path, record.get('rule_id'), record.get('semantics'), rule_id, semantics))
    return records


def write_store(path, records):
    """Writes the store beside `path`, then renames it over `path` (the old store stays until then)."""
    records = sorted(records, key=lambda r: r['fingerprint'])
    temporary = '%s.tmp-%s' % (path, uuid.uuid4().hex)
    with FileSystems.create(temporary) as handle:
        if path.endswith('.avro'):
            import fastavro
            fastavro.writer(handle, fastavro.parse_schema(STORE_SCHEMA),
                            [dict(r, example=canonical_json(r['example'])) for r in records])
        else:
            for record in records:
                handle.write((canonical_json(record) + '\n').encode('utf-8'))
    FileSystems.rename([temporary], [path])  # over the old store, never deleting it first


def merge_store(old_records, run_summaries, rule_id, semantics):
    """The store after a run: old records updated with this run's per-fingerprint summaries."""
    merged = {r['fingerprint']: dict(r) for r in old_records}
    for summary in run_summaries:
        fingerprint = summary['fingerprint']
        record = merged.get(fingerprint)
        if record is None:
            merged[fingerprint] = dict(summary, rule_id=rule_id, semantics=semantics)
            continue
        record['first_seen'] = min(record['first_seen'], summary['first_seen'])
        record['last_seen'] = max(record['last_seen'], summary['last_seen'])
        record['count'] += summary['count']
    return list(merged.values())


def run_identity(row):
    return (row['StartTime'], row['CorrelationId'], row['Caller'], row['VirtualMachineName'],
            row['PowershellFileName'])


def example_of(row):
    return {'VirtualMachineName': row['VirtualMachineName'], 'Caller': row['Caller'],
            'PowershellFileName': row['PowershellFileName'],
            'PowershellScriptCommands': list(row['PowershellScriptCommands']),
            'PowershellFileSize': row['PowershellFileSize'], 'StartTime': format_datetime_us(row['StartTime'])}


class Sighting(NamedTuple):
    """A fingerprint seen: when (the run's StartTime), which script run, and an example of it (None
    for the sightings a stored record stands for)."""

    time: int
    run: tuple
    example: dict


def sighting_of(row):
    """(fingerprint, Sighting) of a RunCommandData row."""
    return row['ScriptFingerprintHash'], Sighting(row['StartTime'], run_identity(row), example_of(row))


def store_observations(records):
    """(fingerprint, Sighting) of the first and last sightings a stored record stands for."""
    for record in records:
        for key in ('first_seen', 'last_seen'):
            yield record['fingerprint'], Sighting(parse_datetime_us(record[key]), ('store', key), None)


def seen_before(window_start, times, history_us):
    """Whether a fingerprint seen at `times` was seen in the `history_us` before `window_start`:
    from ``window_start - history_us`` included to ``window_start`` excluded."""
    return any(window_start - history_us <= time < window_start for time in times)


def keep_new_fingerprints(fingerprint, grouped, history_us):
    times = [sighting.time for sighting in grouped[SEEN]]
    for alert in grouped[ALERTS]:
        start = parse_datetime_us(alert['QueryPeriodStart'])
        if not seen_before(start, times, history_us):
            yield alert


def summarize_fingerprint(fingerprint, sightings):
    """The store summary of this run's sightings of one fingerprint: first and last seen, the number
    of distinct script runs, and the earliest run's example."""
    distinct = {}
    for sighting in sightings:
        if sighting.example is not None:
            distinct.setdefault(sighting.run, sighting)
    if not distinct:
        return
    times = [sighting.time for sighting in distinct.values()]
    earliest = min(distinct.values(), key=lambda sighting: (sighting.time, canonical_json(sighting.example)))
    yield {'fingerprint': fingerprint, 'first_seen': format_datetime_us(min(times)),
           'last_seen': format_datetime_us(max(times)), 'count': len(distinct), 'example': earliest.example}


class FingerprintSightings(beam.PTransform):
    """(window, RunCommandData row) -> (fingerprint, Sighting)."""

    def expand(self, run_command_data):
        return run_command_data | 'ToSighting' >> beam.MapTuple(lambda _, row: sighting_of(row))


class ApplyHistoryBaseline(beam.PTransform):
    """{'alerts': alerts, 'seen': sightings} -> the alerts whose fingerprint was not seen in the
    `history_days` before their window."""

    def __init__(self, history_days):
        super().__init__()
        self._history_us = history_days * US_PER_DAY

    def expand(self, inputs):
        history_us = self._history_us
        alerts = inputs[ALERTS] | 'KeyByFingerprint' >> beam.Map(lambda a: (_fingerprint_of(a), a))
        return (
            {ALERTS: alerts, SEEN: inputs[SEEN]}
            | 'CoGroupByFingerprint' >> beam.CoGroupByKey()
            | 'KeepNewFingerprints' >> beam.FlatMapTuple(
                lambda fingerprint, grouped: keep_new_fingerprints(fingerprint, grouped, history_us)))


def _fingerprint_of(alert):
    """The fingerprint an alert is about (a SingleAlert: the smallest of its rows')."""
    results = alert.get('QueryResults') or [alert['QueryResult']]
    return min(r['ScriptFingerprintHash'] for r in results)


class SummarizeFingerprints(beam.PTransform):
    """Sightings -> one store summary per fingerprint seen in this run."""

    def expand(self, sightings):
        return (
            sightings
            | 'GroupSightings' >> beam.GroupByKey()
            | 'SummarizeFingerprint' >> beam.FlatMapTuple(summarize_fingerprint))


def temporary_dir(output_dir):
    """Where a run writes its fingerprint summaries before the store is merged."""
    return FileSystems.join(output_dir, '.baseline-run')
