"""``rare-runcommand inspect``: what the input options would read, in seconds, without running the
pipeline: the files each pattern matches, each file's size and detected format, and its first row
(or, when its first records are dead letters, why).

    rare-runcommand inspect --azure_activity 'exports/AzureActivity/**' \\
        --device_file_events 'exports/DeviceFileEvents/**' --device_events 'exports/DeviceEvents/**'
"""

import json
import sys

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.console import human_bytes
from pipelines.options import DetectionOptions
from pipelines.usage import UsageError, check_arguments
from transforms.read.input_files import file_format, first_records, list_files
from transforms.read.ingest import format_datetime_us
from transforms.read.schema import COLUMNS, DATETIME, KEY_COLUMNS, TABLES
from transforms.read.sources import matches_any_file
from transforms.write.run_report import visible

MAX_FILES_PER_TABLE = 20
MAX_VALUE_CHARS = 60


def _value(table, column, value):
    if COLUMNS[table].get(column) == DATETIME and isinstance(value, int):
        value = format_datetime_us(value)
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = visible(value).replace('\n', '\\n')
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + '\u2026'


def describe_file(table, path, size, input_format='auto'):
    """Lines describing one input file: size, format, its first row or its first dead letters."""
    lines = ['  %s  %s  %s' % (visible(path), human_bytes(size), file_format(path, table, input_format))]
    rows, dead = first_records(path, table, input_format)
    if rows:
        row = rows[0]
        columns = ['TimeGenerated'] + list(KEY_COLUMNS[table])
        lines.append('    first row: ' + '  '.join('%s=%s' % (c, _value(table, c, row.get(c))) for c in columns))
    elif dead:
        where = {k: v for k, v in dead[0].items() if k not in ('table', 'source', 'reason', 'raw')}
        lines.append('    no row: dead letter "%s" at %s' % (
            visible(dead[0]['reason']), ', '.join('%s %s' % item for item in where.items()) or 'the start'))
    else:
        lines.append('    no record')
    return lines


def inspect(argv, stream=None):
    """Prints what each input option matches; returns the exit status (2 if a pattern matches no file)."""
    from pipelines.rare_runcommand import TABLE_OPTIONS, resolve_inputs  # pylint: disable=import-outside-toplevel
    stream = stream or sys.stdout
    check_arguments(argv)
    detection = PipelineOptions(argv).view_as(DetectionOptions)
    patterns, _ = resolve_inputs(detection)
    if not any(patterns.values()):
        raise UsageError('inspect needs the input options of a run: --azure_activity, --device_file_events, '
                         '--device_events (or --sample)')
    status = 0
    for table in TABLES:
        option, pattern = TABLE_OPTIONS[table], patterns[table]
        if not pattern:
            stream.write('%s: --%s not given\n' % (table, option))
            status = 2
            continue
        files = list_files(pattern) if matches_any_file(table, pattern) else []
        stream.write('%s: --%s %s: %d files, %s\n' % (table, option, pattern, len(files),
                                                     human_bytes(sum(size for _, size in files))))
        if not files:
            stream.write('  no file matches\n')
            status = 2
        for path, size in files[:MAX_FILES_PER_TABLE]:
            stream.write('\n'.join(describe_file(table, path, size, detection.input_format)) + '\n')
        if len(files) > MAX_FILES_PER_TABLE:
            stream.write('  ... %d more files\n' % (len(files) - MAX_FILES_PER_TABLE))
    return status
