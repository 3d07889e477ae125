"""Strict semantics: drop duplicate input records (at-least-once delivery of data export and Event Hubs).

A record's identity is ``EventDataId`` for AzureActivity, and ``(DeviceId, ReportId, Timestamp)`` for
the Defender tables; where those are missing, the whole typed record is its identity.
"""

import json

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.detect.fingerprints import canonical_row_text
from transforms.read.schema import AZURE_ACTIVITY


def record_identity(table, row):
    """A deterministic key naming the record: duplicates of one delivery share it."""
    if table == AZURE_ACTIVITY:
        if row.get('EventDataId'):
            return 'EventDataId:' + row['EventDataId']
    elif row.get('ReportId') is not None and row.get('DeviceId') and row.get('Timestamp') is not None:
        return 'Report:%s:%d:%d' % (row['DeviceId'], row['ReportId'], row['Timestamp'])
    return 'Record:' + json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(',', ':'))


class _FirstOfDuplicates(beam.CombineFn):
    """The smallest record (by canonical JSON) of those sharing an identity, and how many there were."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, accumulator, row):
        return self.merge_accumulators([accumulator, (row, 1)])

    def merge_accumulators(self, accumulators):
        best, count = None, 0
        for row, n in accumulators:
            count += n
            if row is not None and (best is None or canonical_row_text(row) < canonical_row_text(best)):
                best = row
        return best, count

    def extract_output(self, accumulator):
        return accumulator


class DropDuplicateRecords(beam.PTransform):
    """(window, row) of one table -> one row per window and record identity; duplicates are counted."""

    def __init__(self, table):
        super().__init__()
        self._table = table

    def expand(self, rows):
        table = self._table

        def first_and_count(key, accumulator):
            row, count = accumulator
            if count > 1:
                Metrics.counter(table, 'duplicates_dropped').inc(count - 1)
            yield key[0], row

        return (
            rows
            | 'KeyByRecordIdentity' >> beam.MapTuple(lambda window, row: ((window, record_identity(table, row)), row))
            | 'FirstOfDuplicates' >> beam.CombinePerKey(_FirstOfDuplicates())
            | 'DropIdentity' >> beam.FlatMapTuple(first_and_count))
