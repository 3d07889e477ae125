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
    """{name: windowed PCollection} -> one record per window with the element count of each."""

    def expand(self, named):
        names = sorted(named)
        counts = []
        for name in names:
            counts.append(
                named[name]
                | 'Count' + name >> beam.CombineGlobally(beam.combiners.CountCombineFn()).without_defaults()
                | 'Label' + name >> beam.ParDo(_LabelWithWindow(name)))
        return (
            counts
            | 'FlattenCounts' >> beam.Flatten()
            | 'GlobalWindow' >> beam.WindowInto(window.GlobalWindows())
            | 'MergePerWindow' >> beam.CombinePerKey(_merge_counts)
            | 'ToRecord' >> beam.MapTuple(lambda label, counts: _to_record(label, counts, names)))
