"""One native pass over a block of JSON lines: the prefilter's candidates, and the others validated and counted.

With ``--scan full`` the read step needs, for every block of a JSON lines export, the lines the
prefilter (`transforms.read.prefilter.LiteralNeedles`) finds, which the per-line reader decodes,
and for every other line what `transforms.read.bulk.BulkValidator` checks and counts. In Python and
msgspec that is eight to ten passes over the block's bytes (lower-casing, a find per literal,
splitting and joining the lines, counting newlines, brackets and line breaks, the decoding); the
compiled scanner of this package (``transforms/read/_blockscan.c``) does it in one: it walks the
lines, tests each for the needles, parses every other line as JSON (a small validating parser that
decodes nothing but the top-level keys and ``TimeGenerated``), and counts the rows per
``TimeGenerated`` prefix. Python then parses each distinct prefix once and assigns the windows, as
`BulkValidator` does.

The scanner accepts a subset of what `BulkValidator` accepts (its contract is at the top of the C
file: anything it cannot vouch for, such as a key spelled with escapes or a surrogate escape,
sends the block back to the per-line reader), and finds exactly the prefilter's candidate lines;
tests/test_blockscan.py compares it with both on generated and hostile blocks, and the read step's
outputs with and without it.

Where the extension could not be compiled (it is optional in setup.py), `available()` is False and
the reader keeps the Python and msgspec path.
"""

from transforms.read.bounded_json import MAX_JSON_DEPTH
from transforms.read.bulk import BulkValidator
from transforms.read.formats.lines import MAX_RECORD_BYTES
from transforms.read.prefilter import SCRIPT_FILE_ARGUMENT, LiteralNeedles

try:  # pragma: no cover - the fallback is tested by forcing it
    from transforms.read import _blockscan
except ImportError:  # pragma: no cover
    _blockscan = None

_CONFIRMS = {SCRIPT_FILE_ARGUMENT.pattern: 1}  # the confirming patterns the scanner implements


def available():
    """Whether the compiled scanner imports."""
    return _blockscan is not None


def needle_specs(needles):
    """The scanner's form of `needles` (``(literal, folded, confirm)`` triples), or None when it
    cannot express them (not a `LiteralNeedles`, or a confirming pattern it does not implement)."""
    if not isinstance(needles, LiteralNeedles):
        return None
    specs = [(literal, True, 0) for literal in needles.folded]
    for literal in needles.exact:
        pattern = needles.confirm.get(literal)
        confirm = 0 if pattern is None else _CONFIRMS.get(pattern.pattern)
        if confirm is None or (pattern is not None and (pattern.flags != SCRIPT_FILE_ARGUMENT.flags
                                                        or literal != b'-File')):
            return None
        specs.append((literal, False, confirm))
    if not specs or any(not literal for literal, _, _ in specs):
        return None
    return tuple(specs)


def candidate_lines(needles, block):
    """(the (index, start, end) of each line of `block` that `needles` finds, the block's number of
    lines): what `LineReader` gets from the needles, in one native call (index: the line's 0-based
    number in the block; end: the offset of its newline). `needles`: from `needle_specs`."""
    spans, lines, _, _ = _blockscan.scan(block, needles, False, (), MAX_JSON_DEPTH, 0, MAX_RECORD_BYTES)
    return spans, lines


class NativeNeedles:
    """The prefilter's `LiteralNeedles` with their block search done natively: ``lines(block)`` is
    `candidate_lines`; ``search`` (for the record-at-a-time readers of other formats) is the
    literal search's. Picklable."""

    def __init__(self, needles, specs):
        self.needles = needles
        self._specs = tuple(specs)

    def search(self, data, pos=0):
        return self.needles.search(data, pos)

    def lines(self, block):
        return candidate_lines(self._specs, block)


class BlockScanner:
    """``scanner.scan_block(block)``: the candidate lines of a block of JSON lines, and the counts
    of all the others, validated natively (see the module docstring).

    Returns None when some other line needs the per-line reader (the whole block then goes there),
    else ``(candidates, lines, counts, plain)``: the (index, start, end) of each candidate line (as
    `candidate_lines`), the number of lines of the block, ``(parsed, outside_range, {window label:
    rows})`` of the other lines (`transforms.read.bulk.add`), and one byte per candidate, 1 when the
    scanner vouches for it as it does for the others (a plain row, with no more brackets than the
    reader's decoder takes natively: `transforms.read.bounded_json.native_loads` would decode it with
    msgspec). `needles`: from `needle_specs`; `windows`, `key_columns`: as for `BulkValidator`.
    Picklable.
    """

    def __init__(self, needles, windows=None, key_columns=()):
        self._needles = tuple(needles)
        self._validator = BulkValidator(windows, key_columns)
        self._keys = tuple(column.encode('ascii') for column in key_columns)

    def scan_block(self, block, end=None):
        """The result for ``block[:end]`` (the whole block without `end`), read in place."""
        # A line longer than MAX_RECORD_BYTES is the line reader's (a dead letter of its own).
        scanned = _blockscan.scan(block, self._needles, True, self._keys, MAX_JSON_DEPTH,
                                  self._validator.prefix_length, MAX_RECORD_BYTES, -1 if end is None else end)
        if scanned is None:
            return None
        candidates, lines, groups, plain = scanned
        counted = self._validator.window_counts(groups)
        if counted is None:
            return None
        return candidates, lines, (lines - len(candidates),) + counted, plain
