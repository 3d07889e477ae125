"""A summary of every evaluated query window: rows per table and alerts.

A window is evaluated when any of the three tables has a row in it; a window with rows but no
alerts is reported with ``alerts: 0``.
"""

import apache_beam as beam
from apache_beam.transforms import window

from transforms.windows import window_label

ALERTS = 'alerts'


class _LabelWithWindow(beam.DoFn):
    def __init__(self, name):
        self._name = name

    def process(self, count, beam_window=beam.DoFn.WindowParam):
        yield window_label(beam_window), {self._name: count}


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
    """{table: windowed rows, 'alerts': alerts} -> one record per window with the count of each.

    Rows are counted per Beam window; alerts per the query window they name (``QueryPeriodStart``,
    ``QueryPeriodEnd``), whatever window they are in.
    """

    def expand(self, named):
        names = sorted(named)
        counts = [
            named[ALERTS]
            | 'LabelAlerts' >> beam.Map(lambda a: ((a['QueryPeriodStart'], a['QueryPeriodEnd']), {ALERTS: 1}))
            | 'GlobalWindowAlerts' >> beam.WindowInto(window.GlobalWindows())]
        for name in names:
            if name == ALERTS:
                continue
            counts.append(
                named[name]
                | 'Count' + name >> beam.CombineGlobally(beam.combiners.CountCombineFn()).without_defaults()
                | 'Label' + name >> beam.ParDo(_LabelWithWindow(name))
                | 'GlobalWindow' + name >> beam.WindowInto(window.GlobalWindows()))
        return (
            counts
            | 'FlattenCounts' >> beam.Flatten()
            | 'MergePerWindow' >> beam.CombinePerKey(_merge_counts)
            | 'ToRecord' >> beam.MapTuple(lambda label, counts: _to_record(label, counts, names)))
