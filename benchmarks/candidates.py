"""What the read step costs per candidate record, table by table, without Beam.

    python3 -m benchmarks.candidates benchmarks/out/data/dense-1000000-s1-d7 [--bytes 200000000] [--repeat 3]

For each table of a generated data set (`benchmarks.run_benchmark` makes them) it takes the first
``--bytes`` of the JSON lines file, finds the prefilter's candidate lines (the compiled scanner's
search where it is built, else the Python one) and times, per candidate and best of ``--repeat``:

* ``decode``: `transforms.read.formats.records.decode_object` (the line to a dict);
* ``typed``: `transforms.read.ingest.typed_row` (the columns typed as Log Analytics types them);
* ``keep``: the relevance predicate of the read step (`transforms.detect.relevance`, sentinel).

It then runs the whole read step over the same bytes (`ExportSource.read_records` with ``--scan full``
on one range, as one worker reads one split) and reports its CPU seconds. Prints one JSON object.
"""

import argparse
import json
import os
import sys
import time

from apache_beam.io.range_trackers import OffsetRangeTracker

from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics
from transforms.read import blockscan
from transforms.read.formats.lines import BLOCK_BYTES
from transforms.read.formats.records import decode_object
from transforms.read.ingest import typed_row
from transforms.read.schema import TABLES
from transforms.read.sources import ROWS, ExportSource


def candidate_lines(needles, data):
    """The lines of `data` (whole lines) that the read step decodes one by one."""
    specs = blockscan.needle_specs(needles) if blockscan.available() else None
    lines, position = [], 0
    while position < len(data):
        end = data.rfind(b'\n', position, position + BLOCK_BYTES) + 1 or len(data)
        block = data[position:end]
        if specs is not None:
            spans, _ = blockscan.candidate_lines(specs, block)
            lines.extend(block[start:stop] for _, start, stop in spans)
        else:
            lines.extend(line for line in block.split(b'\n') if line and needles.search(line))
        position = end
    return lines


def _best_per_item(function, items, repeat):
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            function(item)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best / max(1, len(items)) * 1e6


def measure_table(directory, table, size, repeat):
    semantics = Semantics.named('sentinel')
    needles, keep = read_filters(table, semantics, 'full')
    path = os.path.join(directory, table + '.jsonl')
    with open(path, 'rb') as handle:
        data = handle.read(size)
    data = data[:data.rfind(b'\n') + 1]
    lines = candidate_lines(needles, data)
    decoded = [decode_object(line)[0] for line in lines]
    raws = [row for row in decoded if row is not None]
    rows = [typed_row(table, raw) for raw in raws]
    source = ExportSource(path, table, 'auto', needles, keep, None, validate_skipped=True)
    started = time.process_time()
    relevant = sum(len(value) for tag, value in source.read_records(path, OffsetRangeTracker(0, len(data)))
                   if tag == ROWS)
    read_cpu = time.process_time() - started
    return {
        'lines': data.count(b'\n'), 'bytes': len(data), 'candidates': len(lines), 'relevant_rows': relevant,
        'decode_us': round(_best_per_item(decode_object, lines, repeat), 2),
        'typed_us': round(_best_per_item(lambda raw: typed_row(table, raw), raws, repeat), 2),
        'keep_us': round(_best_per_item(keep, rows, repeat), 2),
        'read_step_cpu_s': round(read_cpu, 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('directory')
    parser.add_argument('--bytes', type=int, default=200_000_000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args(argv)
    report = {'native_scanner': blockscan.available(),
              'tables': {table: measure_table(args.directory, table, args.bytes, args.repeat) for table in TABLES}}
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write('\n')
    return report


if __name__ == '__main__':
    main()
