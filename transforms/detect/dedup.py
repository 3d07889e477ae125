"""Strict semantics: drop copies of input records (at-least-once delivery of data export and Event Hubs).

A record's identity is ``EventDataId`` for AzureActivity, and ``(DeviceId, ReportId, Timestamp)`` for
the Defender tables; where those are missing, the whole typed record is its identity. Records that
share an identity and have the same content (canonical JSON of the typed record) are one record
delivered twice: one is kept. Records that share an identity but differ in content are not copies of
one another: nothing says which one is right, so all of them are kept, and counted as conflicting
(counter ``conflicting_records`` of the table). `FirstRowCombineFn` keeps one row per strict session
and fingerprint in `transforms.detect.fingerprints`.
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


class Distinct(NamedTuple):
    """The records of one identity: the distinct ones (canonical JSON -> row), and how many arrived."""

    rows: dict
    count: int


class DistinctRecordsCombineFn(beam.CombineFn):
    """The records of one identity -> `Distinct`: one row per distinct content, and the number of records."""

    def create_accumulator(self):
        return Distinct({}, 0)

    def add_input(self, distinct, row):
        distinct.rows.setdefault(canonical_json(row), row)
        return Distinct(distinct.rows, distinct.count + 1)

    def merge_accumulators(self, accumulators):
        rows, count = {}, 0
        for distinct in accumulators:
            for text, row in distinct.rows.items():
                rows.setdefault(text, row)
            count += distinct.count
        return Distinct(rows, count)

    def extract_output(self, distinct):
        return Distinct(dict(sorted(distinct.rows.items())), distinct.count)


def distinct_records(table, rows):
    """`rows` (one window's) without copies: what `DropDuplicateRecords` keeps."""
    grouped = combine_per_key(((record_identity(table, row), row) for row in rows), DistinctRecordsCombineFn())
    return [row for distinct in grouped.values() for row in distinct.rows.values()]


class DropDuplicateRecords(beam.PTransform):
    """(window, row) of one table -> the distinct records of each window and identity; the copies dropped
    (``duplicates_dropped``) and the records sharing an identity with other content
    (``conflicting_records``) are counted."""

    def __init__(self, table):
        super().__init__()
        self._table = table

    def expand(self, rows):
        table = self._table

        def keep_distinct(window_and_identity, distinct):
            kept = len(distinct.rows)
            if distinct.count > kept:
                Metrics.counter(table, 'duplicates_dropped').inc(distinct.count - kept)
            if kept > 1:
                Metrics.counter(table, 'conflicting_records').inc(kept)
            window, _ = window_and_identity
            return [(window, row) for row in distinct.rows.values()]

        return (
            rows
            | 'KeyByRecordIdentity' >> beam.MapTuple(lambda window, row: ((window, record_identity(table, row)), row))
            | 'DistinctRecords' >> beam.CombinePerKey(DistinctRecordsCombineFn())
            | 'KeepDistinct' >> beam.FlatMapTuple(keep_distinct))
