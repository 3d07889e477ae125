"""A summary of every evaluated query window: rows per table and alerts.

A window is evaluated when any of the three tables has a row in it; a window with rows but no
alerts is reported with ``alerts: 0``.
"""

import apache_beam as beam

from transforms.detect.alerts import ALERTS
from transforms.read.ingest import format_datetime_us


def _merge_counts(counts):
    merged = {}
    for partial in counts:
        for name, value in partial.items():
            merged[name] = merged.get(name, 0) + value
    return merged


def _to_record(label, counts, names):
    start, end = label
    record = {'QueryPeriodStart': start, 'QueryPeriodEnd': end}
    record.update({name: counts.get(name, 0) for name in names})
    return record


class SummarizeWindows(beam.PTransform):
    """{table: ((start, end), rows) counts, 'alerts': alerts} -> one record per window with the count of each.

    Row counts come from the read step (`transforms.read.sources.ReadTables`' window counts), in
    microseconds; alerts are counted per the query window they name (``QueryPeriodStart``,
    ``QueryPeriodEnd``), whatever window they are in.
    """

    def expand(self, named):
        names = sorted(named)
        counts = [
            named[ALERTS]
            | 'LabelAlerts' >> beam.Map(lambda a: ((a['QueryPeriodStart'], a['QueryPeriodEnd']), {ALERTS: 1}))]
        for name in names:
            if name == ALERTS:
                continue
            counts.append(
                named[name]
                | 'Label' + name >> beam.MapTuple(
                    lambda bounds, count, name=name: (tuple(map(format_datetime_us, bounds)), {name: count})))
        return (
            counts
            | 'FlattenCounts' >> beam.Flatten()
            | 'MergePerWindow' >> beam.CombinePerKey(_merge_counts)
            | 'ToRecord' >> beam.MapTuple(lambda label, counts: _to_record(label, counts, names)))
