"""Kusto (KQL) operators used by the rule, as small pure functions on plain Python values.

Each function follows the Kusto documentation (learn.microsoft.com/kusto/query/...) and, where the
documentation leaves a detail open, the behaviour of the DuckDB reference translation of the rule
(RE2 regular expressions, yyjson JSON text), so that results are bit-for-bit reproducible:

* ``has``: a whole-term match, case-insensitive. A term is a maximal run of letters and digits
  (Unicode categories L and N); the boundary is only required on a side where the needle itself
  starts or ends with a letter or digit, so ``"x-File a"`` has ``"-File"``. Case-insensitivity is
  RE2's: simple case folding, in which ``k`` also matches KELVIN SIGN and ``s`` LONG S, while ``i``
  matches neither dotted nor dotless Turkish i.
* ``=~``: equality of the simple lower-case mappings (``İ`` lowers to ``i``, ``K`` to ``k``).
* ``toupper``: .NET ``ToUpperInvariant``, the one-to-one simple upper-case mapping (``ß`` stays).
* ``order by`` on strings: .NET ordinal order, which compares UTF-16 code units: a character beyond
  the Basic Multilingual Plane (a surrogate pair, 0xD800-0xDFFF) sorts before U+E000-U+FFFF, so
  ``😀X`` comes before ``ＡY`` although its code point is larger (`ordinal_sort_key`).
* ``tostring`` of a dynamic value: its JSON text as `transforms.read.dynamic.json_text` writes it
  (yyjson's escaping), the text Log Analytics ingestion also gives a non-string value of a string
  column; ``parse_json`` is `transforms.read.dynamic.parse_json_text`.
"""

import re
from functools import lru_cache

from transforms.read.dynamic import json_text, parse_json_text, tostring_dynamic

__all__ = [
    'has_term', 'has_any_term', 'equals_ignore_case', 'to_lower_simple', 'to_upper_invariant',
    'kusto_split_at', 'tostring_dynamic', 'json_text', 'extract_script_name', 'between',
    'parse_json_text', 'split_caller', 'ordinal_sort_key', 'sorted_ordinally',
]

# A letter or digit (Unicode L* or N*); for Python's str, `[^\W_]` is exactly that set.
_ALNUM = r'[^\W_]'

# RE2 simple case-folding orbits of ASCII letters that reach outside ASCII.
_FOLD_EXTRA = {'k': '\u212a', 's': '\u017f'}


def _char_class(ch):
    """A regex matching `ch` and every character RE2 case-folds together with it."""
    members = {ch}
    for variant in (ch.lower(), ch.upper()):
        if len(variant) == 1:
            members.add(variant)
    for variant in list(members):
        extra = _FOLD_EXTRA.get(variant)
        if extra:
            members.add(extra)
    if len(members) == 1:
        return re.escape(ch)
    return '[' + ''.join(re.escape(m) for m in sorted(members)) + ']'


@lru_cache(maxsize=256)
def _term_pattern(needles):
    parts = []
    for needle in needles:
        body = ''.join(_char_class(c) for c in needle)
        if needle[:1].isalnum():
            body = '(?<!' + _ALNUM + ')' + body
        if needle[-1:].isalnum():
            body = body + '(?!' + _ALNUM + ')'
        parts.append(body)
    return re.compile('|'.join('(?:%s)' % p for p in parts))


def has_term(haystack, needle):
    """Kusto ``haystack has needle``: `needle` occurs as a whole term, ignoring case."""
    if haystack.isascii() and needle.isascii():
        return _has_ascii_term(haystack.lower(), needle.lower(), needle[:1].isalnum(), needle[-1:].isalnum())
    return _term_pattern((needle,)).search(haystack) is not None


def _has_ascii_term(lowered, target, bounded_left, bounded_right):
    """`has_term` in ASCII text, by plain search: there only the ASCII case variants of the needle's
    letters can match, and a letter or digit (the term boundary) is an ASCII alphanumeric."""
    start = lowered.find(target)
    while start >= 0:
        end = start + len(target)
        if ((not bounded_left or start == 0 or not lowered[start - 1].isalnum())
                and (not bounded_right or end == len(lowered) or not lowered[end].isalnum())):
            return True
        start = lowered.find(target, start + 1)
    return False


def has_any_term(haystack, needles):
    """Kusto ``haystack has_any (needles...)``: `has_term` for at least one needle."""
    return _term_pattern(tuple(needles)).search(haystack) is not None


@lru_cache(maxsize=4096)
def _upper_char(ch):
    mapped = ch.upper()
    if len(mapped) == 1:
        return mapped
    title = ch.title()
    # Characters whose full upper-case mapping expands: their simple mapping is the
    # single-character title-case letter when one exists (U+1F80 -> U+1F88, U+1FB3 -> U+1FBC),
    # otherwise they have none and stay as they are ('ß', 'ŉ', 'ǰ', ligatures).
    return title if len(title) == 1 else ch


@lru_cache(maxsize=4096)
def _lower_char(ch):
    mapped = ch.lower()
    if len(mapped) == 1:
        return mapped
    # Only U+0130 (İ) expands in lower case ('i' + U+0307); its simple mapping is 'i'.
    return mapped[0]


def to_upper_invariant(text):
    """Kusto ``toupper()``: .NET ``ToUpperInvariant`` (simple mapping, so ``ß`` stays ``ß``)."""
    if text.isascii():
        return text.upper()
    return ''.join(_upper_char(c) for c in text)


def to_lower_simple(text):
    """The simple (one-to-one) lower-case mapping of `text`."""
    if text.isascii():
        return text.lower()
    return ''.join(_lower_char(c) for c in text)


def equals_ignore_case(left, right):
    """Kusto ``left =~ right``."""
    return to_lower_simple(left) == to_lower_simple(right)


@lru_cache(maxsize=1024)
def equals_any_ignore_case(text, candidates):
    """Whether ``text =~ candidate`` for one of the tuple `candidates`. Memoized: the columns compared
    with a rule's constants (operation names) hold few distinct values, seen on every row."""
    lowered = to_lower_simple(text)
    return any(lowered == to_lower_simple(candidate) for candidate in candidates)


def ordinal_sort_key(text):
    """The key that sorts strings as .NET's ordinal comparison does: by UTF-16 code units.

    Python compares code points, which agrees with UTF-16 everywhere except between a character
    beyond U+FFFF (two surrogate code units, 0xD800-0xDFFF) and one in U+E000-U+FFFF. Big-endian
    UTF-16 bytes compare as the code units do; lone surrogates (from JSON escapes) are kept.
    """
    return text.encode('utf-16-be', 'surrogatepass')


def sorted_ordinally(texts):
    """``order by text asc`` on strings: sorted by UTF-16 code units (`ordinal_sort_key`)."""
    return sorted(texts, key=ordinal_sort_key)


def kusto_split_at(text, delimiter, index):
    """``split(text, delimiter)[index]``: negative indexes count from the end; out of range -> None."""
    parts = text.split(delimiter)
    if -len(parts) <= index < len(parts):
        return parts[index]
    return None


# RE2's \s is [\t\n\f\r ] (no vertical tab, no Unicode spaces).
_SCRIPT_NAME = re.compile(r'-File[\t\n\f\r ](script[0-9]{1,9}\.ps1)')


def extract_script_name(command_line):
    """``extract(@"\\-File\\s(script[0-9]{1,9}\\.ps1)", 1, command_line)``; ``""`` when absent."""
    match = _SCRIPT_NAME.search(command_line)
    return match.group(1) if match else ''


def between(value, low, high):
    """``value between (low .. high)``: inclusive at both ends; a null never matches."""
    return value is not None and low is not None and high is not None and low <= value <= high


def split_caller(caller):
    """``split(Caller, "@")[0]`` and ``[1]`` as strings (``""`` when out of range)."""
    parts = caller.split('@')
    return parts[0], parts[1] if len(parts) > 1 else ''
