"""Strict semantics: drop duplicate input records (at-least-once delivery of data export and Event Hubs).

A record's identity is ``EventDataId`` for AzureActivity, and ``(DeviceId, ReportId, Timestamp)`` for
the Defender tables; where those are missing, the whole typed record is its identity. Of the records
sharing an identity the first in canonical order is kept (`FirstRowCombineFn`, also what keeps one
row per strict session and fingerprint in `transforms.detect.fingerprints`).
"""

from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.detect.in_memory import combine_per_key
from transforms.read.dynamic import canonical_json
from transforms.read.schema import AZURE_ACTIVITY


def record_identity(table, row):
    """A deterministic key naming the record: duplicates of one delivery share it."""
    if table == AZURE_ACTIVITY:
        if row.get('EventDataId'):
            return 'EventDataId:' + row['EventDataId']
    elif row.get('ReportId') is not None and row.get('DeviceId') and row.get('Timestamp') is not None:
        return 'Report:%s:%d:%d' % (row['DeviceId'], row['ReportId'], row['Timestamp'])
    return 'Record:' + canonical_json(row)


class FirstRow(NamedTuple):
    """The first of some rows in canonical order, and how many rows there were."""

    text: str    # canonical JSON of `row`: the order
    row: dict
    count: int


def _earlier(first, second):
    if first is None:
        return second
    if second is None:
        return first
    kept = first if first.text <= second.text else second
    return FirstRow(kept.text, kept.row, first.count + second.count)


class FirstRowCombineFn(beam.CombineFn):
    """Rows -> `FirstRow`: the smallest row in canonical order, and the number of rows."""

    def create_accumulator(self):
        return None

    def add_input(self, first, row):
        return _earlier(first, FirstRow(canonical_json(row), row, 1))

    def merge_accumulators(self, firsts):
        merged = None
        for first in firsts:
            merged = _earlier(merged, first)
        return merged

    def extract_output(self, first):
        return first


def first_of_duplicates(table, rows):
    """One row per record identity of `rows` (one window's), as `DropDuplicateRecords` keeps them."""
    firsts = combine_per_key(((record_identity(table, row), row) for row in rows), FirstRowCombineFn())
    return [first.row for first in firsts.values()]


class DropDuplicateRecords(beam.PTransform):
    """(window, row) of one table -> one row per window and record identity; duplicates are counted."""

    def __init__(self, table):
        super().__init__()
        self._table = table

    def expand(self, rows):
        table = self._table

        def keep_first(window_and_identity, first):
            if first.count > 1:
                Metrics.counter(table, 'duplicates_dropped').inc(first.count - 1)
            window, _ = window_and_identity
            return window, first.row

        return (
            rows
            | 'KeyByRecordIdentity' >> beam.MapTuple(lambda window, row: ((window, record_identity(table, row)), row))
            | 'FirstOfDuplicates' >> beam.CombinePerKey(FirstRowCombineFn())
            | 'KeepFirst' >> beam.MapTuple(keep_first))
