"""The files of the input patterns: each file's size, its export format and its first records.

Used before a run, by the launcher (the inputs of the run report, the totals of the progress line)
and by ``rare-runcommand inspect``, which reads only the first records of each file.
"""

from apache_beam.io.filesystems import FileSystems
from apache_beam.io.range_trackers import OffsetRangeTracker

from transforms.read.dead_letter import DEAD_LETTER, ROWS
from transforms.read.formats import choose_format
from transforms.read.sources import HEAD_BYTES, ExportSource


def list_files(pattern):
    """[(path, bytes)] of the files `pattern` matches, by path."""
    found = []
    for result in FileSystems.match([pattern]):
        found.extend((metadata.path, metadata.size_in_bytes) for metadata in result.metadata_list)
    return sorted(set(found))


def list_inputs(patterns):
    """[(table, path, bytes)] of every file of {table: pattern}."""
    return [(table, path, size) for table, pattern in patterns.items() if pattern
            for path, size in list_files(pattern)]


def file_format(path, table, input_format='auto'):
    """The reader that reads `path` (a key of `transforms.read.formats.FORMAT_READERS`)."""
    source = ExportSource(path, table, input_format)
    with source.open_file(path) as stream:
        head = stream.read(HEAD_BYTES)
    return choose_format(input_format, path, head)


def first_records(path, table, input_format='auto', rows=1, dead_letters=3):
    """(up to `rows` typed rows, up to `dead_letters` dead letters) from the start of `path`, read as
    the pipeline reads it; reading stops as soon as it has a row."""
    source = ExportSource(path, table, input_format)
    found_rows, found_dead = [], []
    records = source.read_records(path, OffsetRangeTracker(0, OffsetRangeTracker.OFFSET_INFINITY))
    try:
        for kind, value in records:
            if kind == ROWS:
                found_rows.extend(row for _, row in value[:rows - len(found_rows)])
            elif kind == DEAD_LETTER and len(found_dead) < dead_letters:
                found_dead.append(value)
            if len(found_rows) >= rows:
                break
    finally:
        records.close()
    return found_rows, found_dead
