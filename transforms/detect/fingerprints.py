"""Script fingerprints, their counts per window, Prevalence, and the ``HashCount == 1`` filter.

KQL (sentinel): ``ScriptFingerprintHash = hash_sha256(tostring(PowershellScriptCommands))``, the
lower-case hex SHA-256 of the cmdlet list's compact JSON (the file size is not part of it);
``HashCount`` counts RunCommandData rows per hash, ``Prevalence = HashCount / rows * 100``, and a
row is a result when its hash occurs exactly once in the window.

Strict: the fingerprint is the SHA-256 of the compact JSON object
``{"cmdlets":[...sorted, upper-cased...],"file_size":N}`` (``null`` for an unknown size), and a
session counts once per fingerprint, however many file events its script produced.
"""

import hashlib
import json

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.windows import CountPerWindow


def sentinel_fingerprint(cmdlets):
    """``hash_sha256(tostring(list))``."""
    return hashlib.sha256(kql.json_text(cmdlets).encode('utf-8')).hexdigest()


def strict_fingerprint(cmdlets, file_size):
    """SHA-256 of the canonical encoding ``{"cmdlets":[...],"file_size":N}``."""
    canonical = '{"cmdlets":' + kql.json_text(cmdlets) + ',"file_size":' + kql.json_text(file_size) + '}'
    return hashlib.sha256(canonical.encode('utf-8')).hexdigest()


def canonical_row_text(row):
    """A total, deterministic order of rows: their canonical JSON."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(',', ':'))


class UniqueRowCombineFn(beam.CombineFn):
    """(number of rows, the row when there is exactly one) of one fingerprint."""

    def create_accumulator(self):
        return 0, None

    def add_input(self, accumulator, row):
        count, _ = accumulator
        return count + 1, (row if count == 0 else None)

    def merge_accumulators(self, accumulators):
        count, only = 0, None
        for acc_count, acc_row in accumulators:
            if acc_count:
                only = acc_row if count == 0 else None
                count += acc_count
        return count, only

    def extract_output(self, accumulator):
        return accumulator


class FirstRowCombineFn(beam.CombineFn):
    """The smallest row in canonical order (one row per strict session and fingerprint)."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, row):
        return self.merge_accumulators([accumulator, (canonical_row_text(row), row)])

    def merge_accumulators(self, accumulators):
        present = [acc for acc in accumulators if acc is not None]
        return min(present, key=lambda acc: acc[0]) if present else None

    def extract_output(self, accumulator):
        return accumulator[1]


def session_identity(row):
    return row['CorrelationId'], row['Caller'], row['StartTime'], row['EndTime'], row['VirtualMachineName']


def with_prevalence(row, total_rows):
    """``Prevalence = toreal(HashCount) / toreal(totals) * 100`` with HashCount == 1."""
    return dict(row, Prevalence=1.0 / float(total_rows) * 100)


class UniqueFingerprints(beam.PTransform):
    """(window, RunCommandData row) -> (window, row) for the rows whose fingerprint occurs once in
    their window, with Prevalence (the window's row count is a side input)."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, run_command_data):
        rows = run_command_data
        if self._semantics.strict:
            rows = (
                rows
                | 'KeyBySessionAndFingerprint' >> beam.MapTuple(
                    lambda window, r: ((window, session_identity(r), r['ScriptFingerprintHash']), r))
                | 'OneRowPerSessionAndFingerprint' >> beam.CombinePerKey(FirstRowCombineFn())
                | 'DropSessionKey' >> beam.MapTuple(lambda key, r: (key[0], r)))
        rows_per_window = rows | 'CountRowsPerWindow' >> CountPerWindow()
        return (
            rows
            | 'KeyByFingerprint' >> beam.MapTuple(lambda window, r: ((window, r['ScriptFingerprintHash']), r))
            | 'CountFingerprint' >> beam.CombinePerKey(UniqueRowCombineFn())
            | 'KeepHashCountOne' >> beam.FlatMapTuple(lambda key, acc: [(key[0], acc[1])] if acc[0] == 1 else [])
            | 'AddPrevalence' >> beam.Map(
                lambda window_row, totals: (window_row[0], with_prevalence(window_row[1], totals[window_row[0]])),
                totals=beam.pvalue.AsDict(rows_per_window)))
