"""The batch detection with one grouping per query window: `DetectPerWindow`.

`transforms.detect.query.DetectUniqueScripts` groups once per stage of the query (sessions, the
file join, cmdlet lists, the cmdlet join, fingerprint counts), and every element that leaves a
grouping costs the runner tens of microseconds (benchmarks/README.md). `DetectPerWindow` gives the
same outputs and counters with one grouping on the window:

* before the shuffle (`FoldWindowRows`, in the stage that reads each table), each bundle folds its
  rows into a `WindowInputs` per window, as far as the stages allow without the whole window:
  sentinel rows become session summaries per session key, ``(VM key, script file)`` pairs and
  cmdlet lists per script run; strict rows are kept, one per distinct record
  (`transforms.detect.dedup`), since strict's joins need the rows themselves;
* one `GroupByKey` on the window gathers those few accumulators of the three tables, pickled once
  each, and the window's merged inputs go through the stage functions on lists
  (`transforms.detect.query.window_stages`, the streaming driver's) in `EvaluateWindowInputs`.

What crosses the shuffle is a few accumulators per window and bundle instead of every row, and
the stages run as plain Python on lists. The price: a window's inputs (its Run Command sessions,
script file events and cmdlet lists, not its telemetry) are merged and evaluated by one worker,
in memory; `--detect_grouping stages` keeps the staged transform for windows too big for that.
"""

import pickle
import zlib
from typing import NamedTuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from transforms.detect.dedup import DistinctRecordsCombineFn, record_identity
from transforms.detect.file_joins import is_script_file_write, join_keyed_session_files, script_file_by_vm
from transforms.detect.fingerprints import window_unique_fingerprints
from transforms.detect.query import (DETECTION, RESULTS, RUN_COMMAND_DATA, InWindow, IsAttributed, stages_of,
                                     window_stages)
from transforms.detect.relevance import is_relevant
from transforms.detect.script_cmdlets import CmdletListCombineFn, cmdlet_by_script_run, scripts_of_lists
from transforms.detect.sessions import is_run_command_on_vm, merge_summaries, session_key, succeeded_sessions, \
    summary_of_row
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS

# The tables in the order of `WindowInputs`' fields.
TABLES = (AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS)
STAGE_COUNTERS = ('sessions', 'joined_rows', 'scripts', 'run_command_data')
# The size metrics' estimate of one entry of a `WindowInputs` (a session summary, script file or
# cmdlet list): about what pickle takes for one on the dense 1M benchmark set (18.4 MB, 47,543 entries).
ESTIMATED_ENTRY_BYTES = 400


class WindowInputs(NamedTuple):
    """One window's rows (or part of them), folded. Sentinel: {session key: `SessionSummary`},
    [(VM key, script file)], {(script name, command line): `CmdletList`}. Strict: for each table,
    {record identity: `Distinct`} of the rows its stage reads."""

    activity: object
    script_files: object
    cmdlets: object


class WindowInputsCombineFn(beam.CombineFn):
    """Rows of one table (`table`, one of `TABLES`) of one window -> its `WindowInputs`, pickled;
    independent of the order of rows and bundles, as every CombineFn it folds with is. Merging
    needs no table: the `WindowInputs` of the three tables of a window merge into the window's.
    With `batches`, each input is a list of rows (the batches of `transforms.read.sources.ReadTables`);
    with `relevant`, every row is one that `is_relevant` accepts (the read step kept only those), and
    the first filter of the table's stage is not applied again."""

    def __init__(self, semantics, table=None, batches=False, relevant=False):
        self._semantics = semantics
        self._table = table
        self._index = TABLES.index(table) if table is not None else None
        self._batches = batches
        self._relevant = relevant
        self._cmdlets = CmdletListCombineFn()
        self._distinct = DistinctRecordsCombineFn()

    def create_accumulator(self):
        if self._semantics.drops_duplicate_records:
            return WindowInputs({}, {}, {})
        return WindowInputs({}, [], {})

    def add_input(self, inputs, rows):
        if not self._batches:
            rows = (rows,)
        if self._semantics.drops_duplicate_records:
            self._add_distinct(inputs[self._index], rows)
        elif self._index == 0:
            self._add_activity(inputs.activity, rows)
        elif self._index == 1:
            self._add_script_files(inputs.script_files, rows)
        else:
            self._add_cmdlets(inputs.cmdlets, rows)
        return inputs

    def _add_distinct(self, distinct, rows):
        semantics, table, combine, relevant = self._semantics, self._table, self._distinct, self._relevant
        for row in rows:
            if relevant or is_relevant(table, row, semantics):
                identity = record_identity(table, row)
                found = distinct.get(identity)
                distinct[identity] = combine.add_input(
                    combine.create_accumulator() if found is None else found, row)

    def _add_activity(self, sessions, rows):
        semantics, relevant = self._semantics, self._relevant
        for row in rows:
            if relevant or is_run_command_on_vm(row, semantics):
                key = session_key(row, semantics)
                sessions[key] = merge_summaries(sessions.get(key), summary_of_row(row))

    def _add_script_files(self, script_files, rows):
        semantics, relevant = self._semantics, self._relevant
        script_files.extend(script_file_by_vm(row, semantics) for row in rows
                            if relevant or is_script_file_write(row, semantics))

    def _add_cmdlets(self, cmdlets, rows):
        semantics, combine = self._semantics, self._cmdlets
        for row in rows:
            keyed = cmdlet_by_script_run(row, semantics)
            if keyed is not None:
                key, event = keyed
                found = cmdlets.get(key)
                cmdlets[key] = combine.add_input(combine.create_accumulator() if found is None else found, event)

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators, None)
        if merged is None:
            return self.create_accumulator()
        strict = self._semantics.drops_duplicate_records
        for inputs in accumulators:
            if strict:
                for index in range(len(TABLES)):
                    _merge_into(merged[index], inputs[index], self._distinct)
            else:
                for key, summary in inputs.activity.items():
                    merged.activity[key] = merge_summaries(merged.activity.get(key), summary)
                merged.script_files.extend(inputs.script_files)
                _merge_into(merged.cmdlets, inputs.cmdlets, self._cmdlets)
        return merged

    def extract_output(self, inputs):
        # Pickled once here: the CoGroupByKey that joins the tables' parts would encode a `WindowInputs`
        # with Beam's fallback pickler (a NamedTuple is no primitive), again for each size estimate
        # (192 encodings of 175 MB, 2.2 s, on the dense 1M benchmark set); bytes cross as they are.
        return WindowInputsCoder().encode(inputs)

    def get_accumulator_coder(self):
        return WindowInputsCoder()


class WindowInputsCoder(coders.Coder):
    """`WindowInputs` as one pickle: it holds many small objects, which pickle encodes in C in one call;
    compressed (zlib, its fastest level), since a runner moves every accumulator through its shuffle:
    the realistic 10M set's 8.4 MB of accumulators take 1.15 MB (60 ms to compress, 28 ms to
    decompress, in the workers), and the in-process runner spent about 160 ms of its own process
    grouping and partitioning the uncompressed bytes between the read and the evaluation.

    Its size estimate (the runner's element-size metrics) counts entries instead of encoding the
    accumulator again: the SDK estimates the size of the first elements of every output, and an
    accumulator is one of those few, large elements (five more encodings of each, measured).
    """

    def encode(self, value):
        return zlib.compress(pickle.dumps(value, pickle.HIGHEST_PROTOCOL), 1)

    def decode(self, encoded):
        return pickle.loads(zlib.decompress(encoded))

    def is_deterministic(self):
        return False

    def estimate_size(self, value):
        return ESTIMATED_ENTRY_BYTES * sum(len(part) for part in value)

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


def _merge_into(merged, other, combine_fn):
    """Merges the {key: accumulator} `other` into `merged` with `combine_fn`."""
    for key, accumulator in other.items():
        found = merged.get(key)
        merged[key] = accumulator if found is None else combine_fn.merge_accumulators([found, accumulator])


class FoldWindowRows(beam.DoFn):
    """(window, row) of one table -> (window, pickled `WindowInputs`) of each window of a bundle's rows,
    at the end of the bundle (with `batches`, (window, [row, ...]) in); what a lifted combine does
    before its shuffle, without the merge and extraction that a `CombinePerKey` adds after it.
    Each Beam window of the input (the global one in a batch run) is folded apart. With `table`
    None, the rows of any of `TABLES`, each element ``(table, (window, row))`` (or a batch), each
    table's folded apart."""

    def __init__(self, semantics, table, batches=False, relevant=False):
        self._table = table
        self._combines = {name: WindowInputsCombineFn(semantics, name, batches, relevant)
                          for name in ((table,) if table is not None else TABLES)}
        self._folded = None

    def start_bundle(self):
        self._folded = {}

    def process(self, element, beam_window=beam.DoFn.WindowParam):
        if self._table is None:
            table, (window, rows) = element
        else:
            table, (window, rows) = self._table, element
        key = beam_window, table, window
        inputs = self._folded.get(key)
        combine = self._combines[table]
        if inputs is None:
            inputs = self._folded[key] = combine.create_accumulator()
        combine.add_input(inputs, rows)
        return ()  # the folded rows leave at the end of the bundle

    def finish_bundle(self):
        folded, self._folded = self._folded, None
        coder = WindowInputsCoder()
        for (beam_window, _, window), inputs in folded.items():
            yield WindowedValue((window, coder.encode(inputs)), beam_window.max_timestamp(), (beam_window,))


class EvaluateWindowInputs(beam.DoFn):
    """(window, [pickled `WindowInputs`]) -> (window, result row), and (window,
    RunCommandData row) on the ``run_command_data`` output; counts each stage's rows (and strict's
    dropped and conflicting records) as `DetectUniqueScripts` does."""

    def __init__(self, semantics):
        self._semantics = semantics
        self._combine = WindowInputsCombineFn(semantics)
        self._in_window = InWindow(semantics)
        self._attributed = IsAttributed(semantics)
        self._counters = None

    def setup(self):
        self._counters = {name: Metrics.counter(DETECTION, name) for name in STAGE_COUNTERS}

    def process(self, window_and_parts):
        window, parts = window_and_parts
        coder = WindowInputsCoder()
        return self.evaluate(window, self._combine.merge_accumulators(coder.decode(encoded) for encoded in parts))

    def evaluate(self, window, inputs):
        """The outputs of one window's merged `WindowInputs`."""
        semantics = self._semantics
        if semantics.drops_duplicate_records:
            stages = window_stages(
                {table: self._distinct_rows(table, distinct) for table, distinct in zip(TABLES, inputs)},
                semantics, window)
        else:
            sessions = succeeded_sessions(inputs.activity, semantics)
            runs = join_keyed_session_files(sessions, inputs.script_files, semantics)
            stages = stages_of(sessions, runs, scripts_of_lists(inputs.cmdlets), semantics, window)
        counters = self._counters
        counters['sessions'].inc(sum(1 for session in stages.sessions if self._in_window((window, session))))
        counters['joined_rows'].inc(sum(1 for run in stages.runs if self._attributed((window, run))))
        if not semantics.joins_cmdlets_to_sessions:
            counters['scripts'].inc(len(stages.scripts))
        counters['run_command_data'].inc(len(stages.run_command_data))
        for row in stages.run_command_data:
            yield beam.pvalue.TaggedOutput(RUN_COMMAND_DATA, (window, row))
        for row in window_unique_fingerprints(stages.run_command_data, semantics):
            yield window, row

    @staticmethod
    def _distinct_rows(table, distinct_by_identity):
        """The distinct records of one table's {identity: `Distinct`}, counting what `DropDuplicateRecords`
        counts. `window_stages` drops duplicates again, which leaves distinct records as they are."""
        rows = []
        for distinct in distinct_by_identity.values():
            kept = len(distinct.rows)
            if distinct.count > kept:
                Metrics.counter(table, 'duplicates_dropped').inc(distinct.count - kept)
            if kept > 1:
                Metrics.counter(table, 'conflicting_records').inc(kept)
            rows.extend(distinct.rows.values())
        return rows


class DetectPerWindow(beam.PTransform):
    """`DetectUniqueScripts` with one grouping: {table name: (window, row)} -> {'results': (window, result
    row), 'run_command_data': (window, RunCommandData row)}, the same rows and counters. With
    `batches`, the tables hold ``(window, [row, ...])`` lists (`ReadTables`' batches); with
    `relevant`, only rows that `is_relevant` accepts (the read's `keep` from
    `transforms.detect.relevance.read_filters`), which are not tested again. The tables may also
    come as one collection of ``(table name, element)`` (`ReadTables`' `tagged_rows`).

    Each table is folded by its own `FoldWindowRows` (in the stage that reads it: the rows never
    cross a shuffle), and the tables' accumulators of a window then meet in one `GroupByKey` of a
    few elements. A `Flatten` of the three tables' rows before one fold would not fuse with the
    three reads: every relevant row would be encoded into a buffer first. A `CombinePerKey` per
    table (lifted) and a `CoGroupByKey` gave the same outputs with two shuffles, and every
    accumulator decoded, merged and pickled again between them (0.3 s on the dense 1M set). The
    tables in one collection are folded by one `FoldWindowRows` whose output goes to the grouping
    from the read's own stage; the `Flatten` of three folds' outputs is a stage of its own for the
    in-process runner, which moves every accumulator through it (0.11-0.15 s on the realistic 10M set)."""

    def __init__(self, semantics, batches=False, relevant=False):
        super().__init__()
        self._semantics = semantics
        self._batches = batches
        self._relevant = relevant

    def expand(self, tables):
        semantics = self._semantics
        if isinstance(tables, beam.pvalue.PCollection):
            folded = tables | 'FoldTables' >> beam.ParDo(FoldWindowRows(semantics, None, self._batches,
                                                                        self._relevant))
        else:
            folded = [tables[table] | 'Fold' + table >> beam.ParDo(FoldWindowRows(semantics, table, self._batches,
                                                                                  self._relevant))
                      for table in TABLES] | 'FlattenTables' >> beam.Flatten()
        outputs = (
            folded
            | 'GroupTablesByWindow' >> beam.GroupByKey()
            | 'EvaluateWindows' >> beam.ParDo(EvaluateWindowInputs(semantics)).with_outputs(
                RUN_COMMAND_DATA, main=RESULTS))
        return {RESULTS: outputs[RESULTS], RUN_COMMAND_DATA: outputs[RUN_COMMAND_DATA]}
