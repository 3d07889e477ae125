"""The prefilter of ``--scan relevant``: a byte-literal search that every record relevant to the rule matches.

Records that do not match are skipped before they are decoded. The literals are those the rule's
first filter of each table requires (`relevance_needles`), so the prefilter never drops a row that
parsing and the filter would keep (tests/test_prefilter.py checks it property by property).
"""

import re
from typing import NamedTuple

from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS


class _Found(NamedTuple):
    begin: int
    finish: int

    def start(self):
        return self.begin

    def end(self):
        return self.finish


class LiteralNeedles:
    """A byte-literal search with the `search(data, pos)` interface of a compiled bytes regex.

    `folded` literals match ignoring ASCII case (as ``(?i:...)`` does on bytes), `exact` literals as
    they are. `confirm` maps an exact literal to a bytes regex that must also match where the
    literal starts (``-File`` must be followed by whitespace and ``script``): the literal is found
    with ``bytes.find`` and the regex only checks the few places found. Much faster than a regex
    search: each literal is found with ``bytes.find`` in the block (lower-cased once per block for
    the folded ones), and the next occurrence of every literal is remembered while the reader walks
    forward through the same block.
    """

    def __init__(self, folded=(), exact=(), confirm=None):
        self.folded = tuple(literal.lower() for literal in folded)
        self.exact = tuple(exact)
        self.confirm = dict(confirm or {})
        self._reset(None)

    def _reset(self, data):
        self._data = data
        self._lower = None
        self._next = {}

    def __getstate__(self):
        return {'folded': self.folded, 'exact': self.exact, 'confirm': self.confirm}

    def __setstate__(self, state):
        self.folded, self.exact, self.confirm = state['folded'], state['exact'], state['confirm']
        self._reset(None)

    def _find(self, haystack, literal, pos):
        found = haystack.find(literal, pos)
        pattern = self.confirm.get(literal)
        if pattern is not None:
            while found != -1 and pattern.match(haystack, found) is None:
                found = haystack.find(literal, found + 1)
        return found

    def search(self, data, pos=0):
        if data is not self._data:
            self._reset(data)
            if self.folded:
                self._lower = data.lower()
        best = None
        for folded, haystack, literals in ((False, data, self.exact), (True, self._lower, self.folded)):
            for literal in literals:
                cached = self._next.get((folded, literal))
                # A cached find from `start` still answers for `pos` >= start unless it lies before pos.
                if cached is not None and cached[0] <= pos and (cached[1] == -1 or cached[1] >= pos):
                    found = cached[1]
                else:
                    found = self._find(haystack, literal, pos)
                    self._next[(folded, literal)] = (pos, found)
                if found != -1 and (best is None or found < best[0]):
                    best = (found, found + len(literal))
        return _Found(*best) if best else None


# What every Run Command operation name holds, ignoring case (``=~``: no character outside ASCII
# lower-cases to one of its letters).
RUN_COMMAND = 'runcommand'
# extract(@"\-File\s(script...)"): "-File", one RE2 whitespace ([\t\n\f\r ]), then "script", the
# whitespace raw (a CSV cell) or as a JSON escape (\t \n \f \r; \u00XX escapes are matched apart).
SCRIPT_FILE_ARGUMENT = re.compile(rb'-File(?:[ \t\n\x0c\r]|\\[tnfr])script')


def relevance_needles(table, operations, process_names, fold_process_names):
    """A byte-literal search (`LiteralNeedles`) that every record relevant to the rule for `table`
    matches, or None when no literal search can be exact (every record is then read).

    Exact by construction: it matches the literal that the rule's filters require (ignoring case
    where they do), or any JSON ``\\u00`` escape (which could spell that literal in another way).
    `operations`: the AzureActivity operations compared with ``=~``; `process_names`: the
    DeviceFileEvents processes that write the script, compared ignoring case when
    `fold_process_names` (strict), else with ``==`` (the rule).
    The same holds for every format: the literal is in the bytes of the record whatever its
    shape (CSV only doubles quotes; the Activity Log's operationName, a Defender record's
    properties and an Avro event's Body carry it as is), so the search is applied to a JSON line
    (an envelope passes if any of its records could match), a CSV record's cells, a JSON
    document, or an Avro event's Body.
    """
    # Only an escape of a character below U+0100 can spell a character of these ASCII literals
    # (nothing outside Latin-1 lower-cases or compares equal to them in the rule's filters).
    escape = b'\\u00'
    if table == AZURE_ACTIVITY:
        if not all(RUN_COMMAND in operation.lower() for operation in operations):
            return None  # an operation that does not spell the literal: no literal search is exact
        return LiteralNeedles(folded=[RUN_COMMAND.encode('ascii')], exact=[escape])
    if table == DEVICE_FILE_EVENTS:
        names = list(process_names)
        if any(not name.isascii() or '/' in name for name in names):
            return None  # no byte literal is exact for a name that JSON may spell with escapes
        if not fold_process_names:
            return LiteralNeedles(exact=[name.encode('ascii') for name in names] + [escape])
        if any('k' in name.lower() for name in names):
            return None  # KELVIN SIGN lower-cases to "k": no byte literal is exact for such a name
        return LiteralNeedles(folded=[name.encode('ascii') for name in names], exact=[escape])
    if table == DEVICE_EVENTS:
        return LiteralNeedles(exact=[b'-File', escape], confirm={b'-File': SCRIPT_FILE_ARGUMENT})
    raise ValueError(table)
