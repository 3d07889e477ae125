"""Sinks of alerts and dead letters."""

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems


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
                                                  shard_name_template='-SSSSS-of-NNNNN'))
