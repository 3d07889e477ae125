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

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

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
        return (
            records
            | 'GlobalWindow' >> beam.WindowInto(beam.transforms.window.GlobalWindows())
            | 'ToJsonLine' >> beam.Map(to_json_line)
            | 'WriteFiles' >> beam.io.WriteToText(self._path, file_name_suffix='.jsonl',
                                                  shard_name_template=SHARD_TEMPLATE))


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
