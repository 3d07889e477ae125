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
from typing import NamedTuple

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.dedup import FirstRowCombineFn
from transforms.detect.in_memory import combine_per_key
from transforms.detect.windows import CountPerWindow, key_in_window


def sentinel_fingerprint(cmdlets):
    """``hash_sha256(tostring(list))``."""
    return hashlib.sha256(kql.json_text(cmdlets).encode('utf-8')).hexdigest()


def strict_fingerprint(cmdlets, file_size):
    """SHA-256 of the canonical encoding ``{"cmdlets":[...],"file_size":N}``."""
    return hashlib.sha256(kql.json_text({'cmdlets': cmdlets, 'file_size': file_size}).encode('utf-8')).hexdigest()


class HashCount(NamedTuple):
    """The rows of one fingerprint in a window: how many, and the row when there is exactly one."""

    count: int
    only_row: dict


def _add_counts(first, second):
    if not second.count:
        return first
    if not first.count:
        return second
    return HashCount(first.count + second.count, None)


class HashCountCombineFn(beam.CombineFn):
    """RunCommandData rows of one fingerprint -> their `HashCount`."""

    def create_accumulator(self):
        return HashCount(0, None)

    def add_input(self, counted, row):
        return _add_counts(counted, HashCount(1, row))

    def merge_accumulators(self, counts):
        merged = HashCount(0, None)
        for counted in counts:
            merged = _add_counts(merged, counted)
        return merged

    def extract_output(self, counted):
        return counted


def session_identity(row):
    return row['CorrelationId'], row['Caller'], row['StartTime'], row['EndTime'], row['VirtualMachineName']


def session_and_fingerprint(row):
    """Strict: what counts once: a session and the fingerprint of its script."""
    return session_identity(row), row['ScriptFingerprintHash']


def with_prevalence(row, total_rows):
    """``Prevalence = toreal(HashCount) / toreal(totals) * 100`` with HashCount == 1."""
    return dict(row, Prevalence=1.0 / float(total_rows) * 100)


def window_unique_fingerprints(run_command_data, semantics):
    """The result rows of one window's RunCommandData rows, with Prevalence: `UniqueFingerprints` on a list."""
    rows = list(run_command_data)
    if semantics.counts_sessions:
        firsts = combine_per_key(((session_and_fingerprint(row), row) for row in rows), FirstRowCombineFn())
        rows = [first.row for first in firsts.values()]
    counts = combine_per_key(((row['ScriptFingerprintHash'], row) for row in rows), HashCountCombineFn())
    return [with_prevalence(counted.only_row, len(rows)) for counted in counts.values() if counted.count == 1]


class UniqueFingerprints(beam.PTransform):
    """(window, RunCommandData row) -> (window, row) for the rows whose fingerprint occurs once in
    their window, with Prevalence (the window's row count is a side input)."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, run_command_data):
        rows = run_command_data
        if self._semantics.counts_sessions:
            rows = (
                rows
                | 'KeyBySessionAndFingerprint' >> beam.MapTuple(
                    lambda window, row: key_in_window(window, (session_and_fingerprint(row), row)))
                | 'OneRowPerSessionAndFingerprint' >> beam.CombinePerKey(FirstRowCombineFn())
                | 'DropSessionKey' >> beam.MapTuple(lambda window_and_key, first: (window_and_key[0], first.row)))
        rows_per_window = rows | 'CountRowsPerWindow' >> CountPerWindow()
        return (
            rows
            | 'KeyByFingerprint' >> beam.MapTuple(
                lambda window, row: key_in_window(window, (row['ScriptFingerprintHash'], row)))
            | 'CountFingerprint' >> beam.CombinePerKey(HashCountCombineFn())
            | 'KeepHashCountOne' >> beam.FlatMapTuple(
                lambda window_and_key, counted: [(window_and_key[0], counted.only_row)] if counted.count == 1 else [])
            | 'AddPrevalence' >> beam.MapTuple(
                lambda window, row, totals=None: (window, with_prevalence(row, totals[window])),
                totals=beam.pvalue.AsDict(rows_per_window)))
