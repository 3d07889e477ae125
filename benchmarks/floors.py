"""Lower bounds of any Python Beam pipeline for this detection, measured on the benchmark's data.

    python3 -m benchmarks.floors --mix realistic --rows 1000000 [--repeat 3] [--name NAME]

Three child processes, each run `--repeat` times (medians reported, JSON written to
``benchmarks/results/floors-<mix>-<rows>.json``):

* ``beam-minimal``: import Beam and run a three-element Create -> GroupByKey pipeline on the
  in-process FnApiRunner: what any Beam pipeline costs here before it reads a byte;
* ``scan-1``: read the three files in the pipeline reader's block size and run the reader's exact
  prefilter (`transforms.read.prefilter.relevance_needles`, sentinel) over every block, counting
  lines and candidate lines, and nothing else: no Beam, no JSON, no detection. The least the read
  step can cost in one Python process;
* ``scan-2``: the same with the bytes split between two processes (a file's byte ranges, each
  process its own half of every file), as two workers would read them;
* ``one-pass-2``: two processes that only read their half of every file and look at each byte once
  (``bytes.find`` of a byte that never occurs, the fastest byte loop Python has). No exact
  prefilter can do less: a record is irrelevant only once all its bytes have been looked at.

* ``read-step-1``: the pipeline's read step without Beam: `transforms.read.sources.ExportSource.read_records`
  over each whole file with the pipeline's prefilter, relevance predicate and daily windows (decoding,
  typing and counting the candidate records), in one process. Not a floor: the share of a pipeline
  run that the read step takes.

``beam-minimal + scan-2`` is then a floor for the pipeline's wall time with two workers, whatever
is done after the read, and ``beam-minimal + scan-1`` for one process; ``beam-minimal +
one-pass-2`` is a floor for any exact byte prefilter in a Python Beam pipeline.
"""

import argparse
import json
import os
import platform
import statistics
import sys

from benchmarks.run_benchmark import (DEFAULT_DATA_ROOT, REPO, RESULTS_DIR, ensure_dataset, measure,
                                      table_paths)
from transforms.read.formats.lines import BLOCK_BYTES
from transforms.detect.relevance import read_filters
from transforms.detect.semantics import Semantics

SENTINEL = Semantics.named('sentinel')

BEAM_MINIMAL = '''
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
with beam.Pipeline(options=PipelineOptions(['--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner'])) as p:
    p | beam.Create([1, 2, 3]) | beam.Map(lambda x: (x % 2, x)) | beam.GroupByKey()
'''


def _blocks(path, part, parts):
    """The blocks of `path` in byte range `part` of `parts`, in the reader's block size."""
    size = os.path.getsize(path)
    start, stop = size * part // parts, size * (part + 1) // parts
    with open(path, 'rb') as stream:
        stream.seek(start)
        remaining = stop - start
        while remaining > 0:
            block = stream.read(min(BLOCK_BYTES, remaining))
            if not block:
                return
            remaining -= len(block)
            yield block


def one_pass(paths, part=0, parts=1):
    """(bytes, 0): every byte of this part of every file read and looked at once."""
    total = 0
    for path in paths.values():
        for block in _blocks(path, part, parts):
            total += len(block) + block.find(b'\x00') + 1  # -1: not found
    return total, 0


def scan(paths, part=0, parts=1):
    """(lines, candidate lines) of this part of every file, with the reader's prefilter."""
    lines = candidates = 0
    for table, path in paths.items():
        needles, _ = read_filters(table, SENTINEL)
        for block in _blocks(path, part, parts):
            lines += block.count(b'\n')
            position = 0
            while True:
                found = needles.search(block, position)
                if found is None:
                    break
                candidates += 1
                position = block.find(b'\n', found.start()) + 1 or len(block)
    return lines, candidates


def read_step(paths, part=0, parts=1):
    """(elements produced, rows in them): the pipeline's read step over every file, without Beam."""
    from apache_beam.io.range_trackers import OffsetRangeTracker
    from transforms.read.sources import ROWS, ExportSource
    from transforms.detect.windows import QueryWindows
    day_us = 86_400_000_000
    produced = rows = 0
    for table, path in paths.items():
        needles, keep = read_filters(table, SENTINEL)
        source = ExportSource(path, table, 'auto', needles, keep, QueryWindows(day_us, day_us))
        size = os.path.getsize(path)
        for kind, value in source.read_records(path, OffsetRangeTracker(size * part // parts, size * (part + 1) // parts)):
            produced += 1
            rows += len(value) if kind == ROWS else 0
    return produced, rows


def _scan_main(argv):
    function = {'scan': scan, 'one-pass': one_pass, 'read-step': read_step}[argv[0]]
    paths = json.loads(argv[1])
    parts = int(argv[2])
    if parts == 1:
        print(json.dumps(function(paths)))
        return
    import multiprocessing
    with multiprocessing.Pool(parts) as pool:
        results = pool.starmap(function, [(paths, part, parts) for part in range(parts)])
    print(json.dumps([sum(values) for values in zip(*results)]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python3 -m benchmarks.floors', description=__doc__.splitlines()[0])
    parser.add_argument('--mix', default='realistic', choices=('realistic', 'dense'))
    parser.add_argument('--rows', type=int, default=1000000)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--days', type=int, default=7)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    parser.add_argument('--name')
    args = parser.parse_args(argv)
    directory, info = ensure_dataset(args.data_root, args.mix, args.rows, args.seed, args.days,
                                     log=lambda text: print(text, file=sys.stderr))
    paths = table_paths(directory)
    commands = {
        'beam-minimal': [sys.executable, '-c', BEAM_MINIMAL],
        'scan-1': [sys.executable, '-m', 'benchmarks.floors', 'scan', 'scan', json.dumps(paths), '1'],
        'scan-2': [sys.executable, '-m', 'benchmarks.floors', 'scan', 'scan', json.dumps(paths), '2'],
        'one-pass-2': [sys.executable, '-m', 'benchmarks.floors', 'scan', 'one-pass', json.dumps(paths), '2'],
        'read-step-1': [sys.executable, '-m', 'benchmarks.floors', 'scan', 'read-step', json.dumps(paths), '1'],
    }
    runs = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            result = measure(command, cwd=REPO)
            if result['returncode'] != 0:
                raise SystemExit('%s failed:\n%s' % (name, result['stderr']))
            runs[name].append({key: result[key] for key in ('wall_s', 'cpu_s', 'peak_tree_rss_mb')})
            if name != 'beam-minimal':
                runs[name][-1]['lines_and_candidates'] = json.loads(result['stdout'])
    medians = {name: {key: statistics.median(run[key] for run in values)
                      for key in ('wall_s', 'cpu_s', 'peak_tree_rss_mb')} for name, values in runs.items()}
    report = {
        'mix': args.mix, 'rows': info['total_rows'], 'bytes': info['total_bytes'], 'repeat': args.repeat,
        'machine': {'cpus': os.cpu_count(), 'python': platform.python_version()},
        'medians': medians, 'runs': runs,
        'floor_one_process_s': medians['beam-minimal']['wall_s'] + medians['scan-1']['wall_s'],
        'floor_two_workers_s': medians['beam-minimal']['wall_s'] + medians['scan-2']['wall_s'],
        'floor_any_exact_prefilter_two_workers_s': medians['beam-minimal']['wall_s'] + medians['one-pass-2']['wall_s'],
    }
    for name, values in medians.items():
        print('%-13s wall %6.2f s  cpu %6.2f s  peak %5.0f MB' % (
            name, values['wall_s'], values['cpu_s'], values['peak_tree_rss_mb']))
    print('floor, one process: %.2f s; two workers: %.2f s; any exact prefilter, two workers: %.2f s' % (
        report['floor_one_process_s'], report['floor_two_workers_s'],
        report['floor_any_exact_prefilter_two_workers_s']))
    os.makedirs(RESULTS_DIR, exist_ok=True)
    name = args.name or 'floors-%s-%d' % (args.mix, args.rows)
    with open(os.path.join(RESULTS_DIR, name + '.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1, sort_keys=True)


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'scan':
        _scan_main(sys.argv[2:])
    else:
        main()
