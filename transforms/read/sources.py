"""Reading the tables' exports: a splittable Beam file source, the `ReadTable` PTransform (one table) and
`ReadTables` (several in one step).

The source finds every file of a pattern (Beam FileSystems: local, gs://, ``*`` and ``**``; plain or
gzip), detects each file's export format, decodes its records and types them. Records that cannot
be used become dead letters; they never stop the read. With ``scan='relevant'`` a byte-level
prefilter skips, before any decoding, the records that cannot matter to the rule.

Compressed files are decompressed here (`transforms.read.formats.compressed`), not by Beam: in
bounded memory whatever they inflate to, and a stream cut short or corrupt is a dead letter
("truncated gzip", with the offsets reached) after the rows read before it.
"""

import json
import logging
import traceback

import apache_beam as beam
from apache_beam.io import filebasedsource
from apache_beam.io.concat_source import ConcatSource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.read import blockscan
from transforms.read import bulk as bulk_validation
from transforms.read import dead_letter as reasons
from transforms.read.dead_letter import DEAD_LETTER, ROWS
from transforms.read.formats import FORMAT_READERS, LINE_FORMATS, choose_format
from transforms.read.formats.compressed import CompressedDataError, DecompressedStream, kind_of
from transforms.read.formats.lines import BLOCK_BYTES, LineReader
from transforms.read.formats.records import TypedRows, Undecodable
from transforms.read import progress
from transforms.read.ingest import typed_row
from transforms.read.schema import KEY_COLUMNS
from transforms.read.window_lookup import WindowsOf

STATS = 'stats'
_FILE_COUNTS = ('read', 'skipped_irrelevant', 'parsed', 'outside_range')  # a STATS record's counts
# Metrics namespaces of the per-file accounting: counters named `file_counter_name(table, file, name)`.
INPUT_FILES = 'input_files'
DEAD_LETTERS_BY_FILE = 'dead_letters_by_file'
WINDOW_COUNTS = 'window_counts'
HEAD_BYTES = 4096
# Rows leave the source in lists of up to this many: a splittable source's output costs far more
# per element than a ParDo's, and the next step (_SplitRowsFromDeadLetters) yields them one by one.
ROWS_PER_ELEMENT = 256


class ExportSource(filebasedsource.FileBasedSource):
    """Typed rows (main output) and dead letters (tagged ``DEAD_LETTER``) of one table's exports.

    Every produced element is ``(kind, value)``: ``ROWS`` with a list of up to ``ROWS_PER_ELEMENT``
    ``(windows, row)`` pairs (the query windows inside --start/--end that hold the typed row, None
    without `windows`), ``DEAD_LETTER`` with one dead letter or, once per file range read, ``STATS``:
    a dict of counts (``read``: records passed over, ``skipped_irrelevant``: skipped by the
    prefilter, ``parsed``: valid rows, ``outside_range``: rows outside --start/--end, ``windows``:
    {query window: rows}). With `windows`, rows that no window in range holds are counted and
    dropped, and the others are counted per query window; with `keep`, only the rows it accepts are
    produced (after being parsed, validated and counted).

    With `validate_skipped` the records that `needles` skip are still validated and counted
    (``--scan full``): in JSON lines files a block at a time natively (`transforms.read.blockscan`
    in one pass, else `transforms.read.bulk`; each hands any block it cannot vouch for back to the
    per-line reader), in every other format (and without either) by reading every record as without
    `needles`.
    """

    block_bytes = BLOCK_BYTES  # how much of a file the line readers take at a time

    def __init__(self, pattern, table, input_format='auto', needles=None, keep=None, windows=None,
                 validate_skipped=False):
        super().__init__(pattern, compression_type=CompressionTypes.AUTO, splittable=True, validate=False)
        self._table = table
        self._input_format = input_format
        self._needles = needles
        self._keep = keep
        self._windows = windows
        self._validate_skipped = validate_skipped

    def _line_filters(self, fmt):
        """(needles, bulk) of the LineReader of a file of format `fmt`."""
        if not self._validate_skipped:
            native = blockscan.available() and fmt in LINE_FORMATS
            specs = blockscan.needle_specs(self._needles) if native else None
            return (self._needles if specs is None else blockscan.NativeNeedles(self._needles, specs)), None
        if (self._needles is None or self._keep is None or fmt != 'jsonl'
                or self._input_format not in (None, 'auto', 'jsonl')):
            return None, None  # every record read one by one
        specs = blockscan.needle_specs(self._needles) if blockscan.available() else None
        if specs is not None:
            return self._needles, blockscan.BlockScanner(specs, self._windows, KEY_COLUMNS[self._table])
        if not bulk_validation.available():
            return None, None
        return self._needles, bulk_validation.BulkValidator(self._windows, KEY_COLUMNS[self._table])

    def open_file(self, file_name):
        """The file's bytes, decompressed here when its name says so (see the module docstring)."""
        raw = FileSystems.open(file_name, 'application/octet-stream', compression_type=CompressionTypes.UNCOMPRESSED)
        kind = kind_of(file_name)
        return DecompressedStream(raw, kind) if kind else raw

    def read_records(self, file_name, range_tracker):
        start = range_tracker.start_position()
        counts = {'parsed': 0, 'outside_range': 0, 'windows': {}}
        lines = fmt = None
        with self.open_file(file_name) as stream:
            try:
                head = stream.read(HEAD_BYTES)
                stream.seek(0)
                fmt = choose_format(self._input_format, file_name, head)
                if fmt not in LINE_FORMATS:
                    if start > 0:  # whole-file formats are read by the split that starts at 0
                        progress.range_done(file_name, start, range_tracker.stop_position(), 0)
                        return
                    claim = lambda offset: True  # noqa: E731
                else:
                    claim = range_tracker.try_claim
                stop = range_tracker.stop_position() if fmt in LINE_FORMATS else None
                needles, bulk = self._line_filters(fmt)
                # A file read as it is stored is read again from a block's unfinished last line (a
                # seek back of one line); a decompressed stream carries it instead.
                lines = LineReader(stream, start, claim, needles, block_bytes=self.block_bytes, stop=stop,
                                   bulk=bulk, stop_now=range_tracker.stop_position,
                                   rewind=not isinstance(stream, DecompressedStream) and stream.seekable())
                yield from self._read(file_name, FORMAT_READERS[fmt], stream, lines, counts, needles)
            except CompressedDataError as error:
                # What was decompressed before is read; the rest of the file is this dead letter.
                yield DEAD_LETTER, reasons.dead_letter(
                    self._table, file_name, {'offset': error.offset, 'compressed_offset': error.compressed_offset},
                    error.reason)
            except Exception as error:  # pylint: disable=broad-except
                if isinstance(error, OSError):
                    raise  # the file system's errors fail the bundle, which the runner retries
                # A reader bug must not stop the run either: the rest of the file is one dead letter.
                logging.warning('%s: reading %s failed: %s', self._table, file_name, traceback.format_exc())
                yield DEAD_LETTER, reasons.dead_letter(
                    self._table, file_name, {}, '%s: %s: %s' % (reasons.READER_ERROR, type(error).__name__, error))
        for result in lines.bulk_counts if lines else ():
            bulk_validation.add(result, counts)
        # A reader stopped by an error counts the lines it produced, not always the block they were in.
        read = max(lines.lines_seen, lines.lines_produced) if lines else 0
        skipped = read - lines.lines_produced if lines else 0
        progress.range_done(file_name, start, range_tracker.stop_position(), read)
        yield STATS, {'read': read, 'skipped_irrelevant': skipped, 'parsed': counts['parsed'],
                      'outside_range': counts['outside_range'], 'windows': counts['windows'],
                      'file': file_name, 'format': fmt}

    def _read(self, file_name, decoder, stream, lines, counts, needles):
        keep, per_window, batch = self._keep, counts['windows'], []
        windows_of = WindowsOf(self._windows) if self._windows is not None else None
        key_columns = KEY_COLUMNS[self._table]
        try:
            for item in decoder(lines, stream=stream, table=self._table, needles=needles):
                if item.__class__ is TypedRows:
                    rows = item.rows  # plain rows the scanner vouched for, each with a TimeGenerated and a key column
                elif isinstance(item, Undecodable):
                    yield DEAD_LETTER, reasons.dead_letter(
                        self._table, file_name, _in_file(item.position, lines), item.reason, item.raw)
                    continue
                else:
                    row = typed_row(self._table, item.row)
                    if row['TimeGenerated'] is None:
                        yield DEAD_LETTER, reasons.dead_letter(
                            self._table, file_name, _in_file(item.position, lines), reasons.NO_TIME,
                            json.dumps(item.row, ensure_ascii=False))
                        continue
                    for column in key_columns:  # a loop, not any(): a generator per row cost more than the test
                        if column in item.row:
                            break
                    else:
                        yield DEAD_LETTER, reasons.dead_letter(
                            self._table, file_name, _in_file(item.position, lines),
                            reasons.not_the_table(self._table, key_columns), json.dumps(item.row, ensure_ascii=False))
                        continue
                    rows = (row,)
                counts['parsed'] += len(rows)
                for row in rows:
                    labels = None
                    if windows_of is not None:
                        labels = windows_of(row['TimeGenerated'])
                        if not labels:
                            counts['outside_range'] += 1
                            continue
                        for label in labels:
                            per_window[label] = per_window.get(label, 0) + 1
                    if keep is None or keep(row):
                        batch.append((labels, row))
                        if len(batch) >= ROWS_PER_ELEMENT:
                            yield ROWS, batch
                            batch = []
        except Exception:  # pylint: disable=broad-except
            if batch:  # the rows read before a decompression or reader error are kept
                yield ROWS, batch
            raise
        if batch:
            yield ROWS, batch


def _in_file(position, lines):
    """A record's position with its line number counted from the start of the file."""
    if 'line' not in position:
        return position
    return dict(position, line=lines.absolute_line(position['line']))


class _SplitRowsFromDeadLetters(beam.DoFn):
    """Routes dead letters to their own output, counts, and yields each row, or ``(window, row)``
    for each of its query windows when the source assigned them; with `batches`, ``(window, [row,
    ...])`` for each query window of a source element's rows instead.

    One table's records (``(kind, value)``, `tables` of one name): rows to the main output, window
    counts to WINDOW_COUNTS. Several tables' (``(table, (kind, value))`` with `tagged`): each table's
    rows and window counts to outputs of its own (`rows_output`, `counts_output`); with
    `tagged_rows`, every table's rows to the one output TABLE_ROWS as ``(table, item)``."""

    def __init__(self, tables, batches=False, tagged=False, tagged_rows=False):
        self._tables = tuple(tables)
        self._batches = batches
        self._tagged = tagged
        self._tagged_rows = tagged_rows

    def setup(self):
        self._counters = {table: {name: Metrics.counter(table, name)
                                  for name in _FILE_COUNTS + ('dead_lettered', 'relevant')}
                          for table in self._tables}

    def process(self, element):
        if self._tagged:
            table, (kind, value) = element
            rows_tag, counts_tag = rows_output(table), counts_output(table)
        else:
            (table,), (kind, value) = self._tables, element
            rows_tag, counts_tag = None, WINDOW_COUNTS
        counters = self._counters[table]
        if kind == ROWS:
            counters['relevant'].inc(len(value))
            items = _rows_by_window(value) if self._batches else _each_row(value)
            if rows_tag is None:
                yield from items
            elif self._tagged_rows:
                for item in items:
                    yield beam.pvalue.TaggedOutput(TABLE_ROWS, (table, item))
            else:
                for item in items:
                    yield beam.pvalue.TaggedOutput(rows_tag, item)
        elif kind == DEAD_LETTER:
            counters['dead_lettered'].inc()
            Metrics.counter(DEAD_LETTERS_BY_FILE, file_counter_name(
                table, value.get('source', ''), str(value.get('reason', '')).replace('\t', ' '))).inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, value)
        else:
            for name in _FILE_COUNTS:
                counters[name].inc(value[name])
            if value.get('file'):
                for name in _FILE_COUNTS:
                    if value[name]:
                        Metrics.counter(INPUT_FILES, file_counter_name(table, value['file'], name)).inc(
                            value[name])
                if value.get('format'):
                    Metrics.counter(INPUT_FILES, file_counter_name(
                        table, value['file'], 'format:' + value['format'])).inc()
            for label, count in value['windows'].items():
                yield beam.pvalue.TaggedOutput(counts_tag, (label, count))


def _each_row(labelled_rows):
    """Each row, or ``(window, row)`` for each of its windows when it has them."""
    for labels, row in labelled_rows:
        if labels is None:
            yield row
        else:
            for label in labels:
                yield label, row


# The output of `ReadTables` with `tagged_rows` that holds every table's rows, as (table, item).
TABLE_ROWS = 'rows:every_table'


def rows_output(table):
    """The output of `ReadTables` that holds `table`'s rows."""
    return 'rows:' + table


def counts_output(table):
    """The output of `ReadTables` that holds `table`'s row counts per query window."""
    return 'window_counts:' + table


def _rows_by_window(labelled_rows):
    """(window, [row, ...]) of each window that holds some of the ``(windows, row)`` pairs."""
    by_window = {}
    for labels, row in labelled_rows:
        for label in labels:
            rows = by_window.get(label)
            if rows is None:
                by_window[label] = [row]
            else:
                rows.append(row)
    return by_window.items()


def file_counter_name(table, file_name, name):
    """The name of a per-file counter: table, file and what it counts, tab-separated."""
    return '%s\t%s\t%s' % (table, file_name, name)


def parse_file_counter_name(counter_name):
    """(table, file, name) of `file_counter_name`."""
    table, rest = counter_name.split('\t', 1)
    file_name, name = rest.rsplit('\t', 1)
    return table, file_name, name


class UnreadableInput(IOError):
    """An input pattern whose files cannot be listed: the run fails rather than read nothing."""


def matches_any_file(table, pattern):
    """Whether a file pattern matches at least one file.

    An error listing the files (an unknown file system, a missing bucket, no permission) is an
    `UnreadableInput`, never taken for no file: a detection that silently reads nothing misses
    every alert of the run.
    """
    try:
        results = FileSystems.match([pattern])
    except Exception as error:  # pylint: disable=broad-except  # Beam raises ValueError or BeamIOError
        raise UnreadableInput('%s: cannot list the files of %r: %s' % (table, pattern, error)) from error
    return any(result.metadata_list for result in results)


class ReadTable(beam.PTransform):
    """A file pattern of one table's exports -> typed rows, plus dead letters.

    Returns a ``DoOutputsTuple`` with ``.rows`` (typed rows; with `windows`, ``(window, row)`` for
    every query window inside --start/--end that holds the row's TimeGenerated, as the detection's
    stages take them), ``.dead_letter`` and ``.window_counts`` (((start, end) in microseconds, rows)
    per query window, when `windows` is given). A pattern that matches no file reads as an empty
    table; one whose files cannot be listed raises `UnreadableInput`. `needles`, `keep`,
    `windows` and `validate_skipped`: see `ExportSource`.

    With `batches` (and `windows`), ``.rows`` holds ``(window, [row, ...])`` lists instead, each of
    rows read together (up to `ROWS_PER_ELEMENT`): a consumer that folds rows per window (a lifted
    combine) then handles a list per element, and every row costs it no Beam element of its own.
    """

    def __init__(self, table, pattern, input_format='auto', needles=None, keep=None, windows=None,
                 validate_skipped=False, batches=False):
        super().__init__(label=None)
        if batches and windows is None:
            raise ValueError('rows are batched per query window: batches needs windows')
        self._batches = batches
        self._validate_skipped = validate_skipped
        self._table = table
        self._pattern = pattern
        self._input_format = input_format
        self._needles = needles
        self._keep = keep
        self._windows = windows

    def expand(self, pbegin):
        sources = []
        if _has_files(self._table, self._pattern):
            sources.append(ExportSource(self._pattern, self._table, self._input_format, self._needles, self._keep,
                                        self._windows, self._validate_skipped))
        return _read_records(pbegin, sources) | 'SplitDeadLetters' >> beam.ParDo(
            _SplitRowsFromDeadLetters([self._table], self._batches)).with_outputs(DEAD_LETTER, WINDOW_COUNTS, main=ROWS)


def _has_files(table, pattern):
    """Whether `pattern` matches some file (`matches_any_file`); when it matches none, says so."""
    if pattern and matches_any_file(table, pattern):
        return True
    logging.warning('%s: no file matches %r; the table is read as empty.', table, pattern)
    return False


def _read_records(pbegin, sources):
    """The records of `sources` in one read (Beam's own concatenation of sources for several, what a
    file source of several files is made of); none without sources."""
    if not sources:
        return pbegin | 'NoExports' >> beam.Create([])
    return pbegin | 'ReadExports' >> beam.io.Read(sources[0] if len(sources) == 1 else ConcatSource(sources))


class _TableRecords(ExportSource):
    """An `ExportSource` whose records say their table: ``(table, (kind, value))``."""

    def read_records(self, file_name, range_tracker):
        table = self._table
        for record in super().read_records(file_name, range_tracker):
            yield table, record


class ReadTables(beam.PTransform):
    """Several tables' exports read in one step: {table: (pattern, needles, keep)} -> each table's
    rows (output `rows_output(table)`) and row counts per query window (`counts_output(table)`), as
    `ReadTable` gives them, and the dead letters of all (output DEAD_LETTER).

    One read of all the files instead of one per table: a runner splits them into ranges together
    and runs one stage over all the ranges (one per table otherwise, each ending when its slowest
    range does). A table whose pattern matches no file reads as empty; one whose files cannot be
    listed raises `UnreadableInput`. `input_format`, `windows`, `validate_skipped` and `batches`: as
    for `ReadTable`, for every table.

    With `tagged_rows`, every table's rows go to one output instead, TABLE_ROWS, each as ``(table,
    item)`` (item: what `rows_output(table)` would hold): a consumer that handles the tables apart in
    one step then needs no Flatten of the tables' outputs, which the in-process runner does not fuse
    with its consumer (it writes the outputs into a buffer, then reads them in a stage of its own).
    """

    def __init__(self, tables, input_format='auto', windows=None, validate_skipped=False, batches=False,
                 tagged_rows=False):
        super().__init__(label=None)
        if batches and windows is None:
            raise ValueError('rows are batched per query window: batches needs windows')
        self._tables = dict(tables)
        self._input_format = input_format
        self._windows = windows
        self._validate_skipped = validate_skipped
        self._batches = batches
        self._tagged_rows = tagged_rows

    def expand(self, pbegin):
        sources = [_TableRecords(pattern, table, self._input_format, needles, keep, self._windows,
                                 self._validate_skipped)
                   for table, (pattern, needles, keep) in self._tables.items() if _has_files(table, pattern)]
        records = _read_records(pbegin, sources)
        rows = [TABLE_ROWS] if self._tagged_rows else [rows_output(table) for table in self._tables]
        outputs = [DEAD_LETTER] + rows + [counts_output(table) for table in self._tables]
        return records | 'SplitDeadLetters' >> beam.ParDo(
            _SplitRowsFromDeadLetters(self._tables, self._batches, tagged=True,
                                      tagged_rows=self._tagged_rows)).with_outputs(*outputs)
