"""File sinks: JSON lines and Avro, written atomically, and the series a run writes.

File sinks (``jsonl``, ``avro``) go through Beam's ``FileBasedSink``: every bundle writes a temporary
file under ``<folder>/beam-temp-<prefix>-<uuid>/``; only when all bundles have succeeded does
``finalize_write`` rename them to ``<prefix>-SSSSS-of-NNNNN.<ext>`` and delete the temporary folder.
The command writes them in a staging folder of its own and swaps the whole run in for the previous
one once it succeeded (`transforms.write.output_folder`, which uses `previous_run_patterns` to find
the previous run's series, whatever their number of shards). ``summary.json`` (run report) is
swapped in last: its presence marks a complete output folder.
"""

import json
import os
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

import schemas

SCHEMA_DIR = os.path.dirname(os.path.abspath(schemas.__file__))
SHARD_TEMPLATE = '-SSSSS-of-NNNNN'
_DEAD_LETTER_FIELDS = ('table', 'source', 'reason', 'raw')

# The file series of a run: <prefix>-SSSSS-of-NNNNN.<jsonl|avro> under --output_dir.
ALERT_FILES = 'alerts'
DEAD_LETTER_FILES = 'dead_letter'
SENTINEL_DEAD_LETTER_FILES = 'sentinel_dead_letter'
WINDOW_FILES = 'windows'
OUTPUT_PREFIXES = (ALERT_FILES, DEAD_LETTER_FILES, SENTINEL_DEAD_LETTER_FILES, WINDOW_FILES)
RUN_REPORT_FILES = ('summary.json', 'report.html')


def previous_run_patterns(output_dir):
    """Globs of everything a run writes under `output_dir`, the completion marker first."""
    patterns = [FileSystems.join(output_dir, name) for name in RUN_REPORT_FILES]
    patterns += [FileSystems.join(output_dir, prefix + '-*-of-*.' + ext)
                 for prefix in OUTPUT_PREFIXES for ext in ('jsonl', 'avro')]
    return patterns


def schema_path(name):
    """Path of a published schema file (``alert.avsc``, ``dcr_example.json``, ...)."""
    return os.path.join(SCHEMA_DIR, name)


def load_schema(name):
    with open(schema_path(name), encoding='utf-8') as handle:
        return json.load(handle)


def to_json_line(record):
    return json.dumps(record, ensure_ascii=False, separators=(',', ':'))


class WriteJsonLines(beam.PTransform):
    """Records -> ``<output_dir>/<prefix>-SSSSS-of-NNNNN.jsonl`` (written to temporary files, then renamed)."""

    def __init__(self, output_dir, prefix):
        super().__init__()
        self._path = FileSystems.join(output_dir, prefix)

    def expand(self, records):
        # The sink WriteToText would write with (its file format, compression, naming), written by WriteSinkFiles.
        sink = beam.io.WriteToText(self._path, file_name_suffix='.jsonl',
                                   shard_name_template=SHARD_TEMPLATE)._sink  # pylint: disable=protected-access
        return (records
                | 'GlobalWindow' >> beam.WindowInto(beam.transforms.window.GlobalWindows())
                | 'WriteFiles' >> WriteSinkFiles(sink, to_json_line))


class _WriteBundles(beam.DoFn):
    """Each bundle's records, converted, to a temporary file of the sink; yields each file written."""

    def __init__(self, sink, convert):
        self._sink = sink
        self._convert = convert
        self._writer = None

    def start_bundle(self):
        self._writer = None

    def process(self, record, temp_dir):
        if self._writer is None:
            self._writer = self._sink.open_writer(temp_dir, str(uuid.uuid4()))
        self._writer.write(self._convert(record))
        if self._writer.at_capacity():
            yield self._writer.close()
            self._writer = None

    def finish_bundle(self):
        if self._writer is not None:
            yield WindowedValue(self._writer.close(), GlobalWindow().max_timestamp(), [GlobalWindow()])
            self._writer = None


def _finalize(temp_dir, sink, written):
    """Beam's WriteImpl end: an empty shard when nothing was written, then every file renamed."""
    written = list(written)
    if not written and not sink.skip_if_empty:
        written.append(sink.open_writer(temp_dir, str(uuid.uuid4())).close())
    sink.pre_finalize(temp_dir, written)
    yield from sink.finalize_write(temp_dir, written, None)


class WriteSinkFiles(beam.PTransform):
    """What ``beam.io.Write`` does with a `FileBasedSink` without a fixed number of shards, with
    `convert` applied to each record: the sink's temporary folder, one temporary file per bundle
    (a retried bundle's file is never renamed), every file renamed to its final name once all bundles
    succeeded, an empty shard when there was no record, the folder deleted; with the sink's own
    methods, as Beam's ``WriteImpl`` calls them.

    In 4 transforms instead of 12 (``WriteImpl`` materialises the written files' names with a
    GroupByKey and runs its pre-finalisation as a step apart; here the names reach the last step as a
    side input): every transform costs time to build, translate and set up whatever the number of
    records, and a run writes three file series. With the in-process runner a run of the detection
    has 25 stages instead of 31."""

    def __init__(self, sink, convert):
        super().__init__()
        self._sink = sink
        self._convert = convert

    def expand(self, records):
        temp_dir = (records.pipeline | 'Impulse' >> beam.Impulse()
                    | 'InitializeWrite' >> beam.Map(lambda _, sink: sink.initialize_write(), self._sink))
        written = records | 'WriteBundles' >> beam.ParDo(_WriteBundles(self._sink, self._convert),
                                                         beam.pvalue.AsSingleton(temp_dir))
        return temp_dir | 'FinalizeWrite' >> beam.FlatMap(_finalize, self._sink, beam.pvalue.AsList(written))


# --- Avro ---------------------------------------------------------------------------------------

def avro_fields(schema):
    return [field['name'] for field in schema['fields']]


def alert_to_avro(alert, fields=None):
    """An alert dict as a record of ``schemas/alert.avsc`` (absent optional fields as null)."""
    fields = fields or avro_fields(load_schema('alert.avsc'))
    record = {name: alert.get(name) for name in fields}
    record['Entities'] = [{k: v if isinstance(v, str) else json.dumps(v) for k, v in entity.items()}
                          for entity in alert.get('Entities') or ()]
    record['Tactics'] = list(alert.get('Tactics') or ())
    record['Techniques'] = list(alert.get('Techniques') or ())
    return record


def dead_letter_to_avro(record):
    """A dead letter as a record of ``schemas/dead_letter.avsc``: where it was goes to ``position``."""
    position = {}
    for key, value in record.items():
        if key in _DEAD_LETTER_FIELDS:
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            position[key] = value
        else:
            position[key] = json.dumps(value, ensure_ascii=False)
    out = {key: record.get(key) for key in _DEAD_LETTER_FIELDS}
    for key in _DEAD_LETTER_FIELDS:
        if out[key] is not None and not isinstance(out[key], str):
            out[key] = str(out[key])
    out['position'] = position
    return out


class WriteAvro(beam.PTransform):
    """Records -> ``<output_dir>/<prefix>-SSSSS-of-NNNNN.avro`` with a schema of ``schemas/`` (atomic like jsonl)."""

    def __init__(self, output_dir, prefix, schema_name, convert):
        super().__init__()
        self._path = FileSystems.join(output_dir, prefix)
        self._schema = load_schema(schema_name)
        self._convert = convert

    def expand(self, records):
        return (
            records
            | 'GlobalWindow' >> beam.WindowInto(beam.transforms.window.GlobalWindows())
            | 'ToAvroRecord' >> beam.Map(self._convert)
            | 'WriteFiles' >> beam.io.WriteToAvro(self._path, schema=self._schema, file_name_suffix='.avro',
                                                  shard_name_template=SHARD_TEMPLATE))
