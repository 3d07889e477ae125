"""benchmarks/floors.py on a few hundred generated rows: its measured loops do what they claim.

No timing is asserted: the scan sees every line, the one-pass loop every byte, the read step finds
the rows the prefilter lets through, and each gives the same totals when the bytes are split in two.
"""

import os

from benchmarks import floors
from benchmarks import run_benchmark as bench


def test_floor_loops_cover_every_byte_and_agree_across_splits(tmp_path):
    directory, info = bench.ensure_dataset(str(tmp_path), 'dense', 600, seed=5, days=2, log=lambda *_: None)
    paths = bench.table_paths(directory)
    lines = 0
    for path in paths.values():
        with open(path, 'rb') as handle:
            lines += handle.read().count(b'\n')
    assert floors.one_pass(paths) == (sum(os.path.getsize(p) for p in paths.values()), 0)
    scanned, candidates = floors.scan(paths)
    assert scanned == lines == info['total_rows']
    produced, rows = floors.read_step(paths)
    assert 0 < rows <= candidates < scanned  # the dense mix has relevant rows, and irrelevant ones
    halves = [floors.read_step(paths, part, 2) for part in (0, 1)]
    assert sum(rows for _, rows in halves) == rows
    assert sum(floors.scan(paths, part, 2)[0] for part in (0, 1)) == lines
