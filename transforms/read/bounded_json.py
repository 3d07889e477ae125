"""JSON decoding with bounds an attacker cannot push past: nesting depth and integer length.

Python's JSON decoder recurses once per nesting level, so a 2 KB line of ``[`` x 1000 raises
``RecursionError``, and a JSON integer of more than 4,300 digits raises ``ValueError`` (Python's
limit on int-from-string conversion). Here:

* a value nested deeper than `MAX_JSON_DEPTH` levels is `TooDeep` (a ``ValueError``), always at the
  same depth whatever the call stack above the decoder (a ``RecursionError`` only tells that the
  text is deeper than that). 64 is the default maximum depth of .NET's JSON readers
  (``System.Text.Json``'s ``JsonDocumentOptions.MaxDepth``, Json.NET's ``MaxDepth``); real export
  records nest a few levels.
* an integer of more than 4,300 digits is read as a real infinity (as a float with that many
  digits is): a long column types it as null, like any number out of the long range.

The check costs two ``str.count`` calls for a text with at most `MAX_JSON_DEPTH` brackets, and a
few regular-expression passes over the text's brackets otherwise.

`loads` decodes a text of at most `MAX_JSON_DEPTH` brackets (which cannot nest too deep) with
``msgspec`` first, two to four times faster than Python's decoder, and with Python's decoder
whenever msgspec refuses it. Where msgspec accepts a text it returns what Python's decoder does:
the same values, floats rounded alike, the last of duplicate keys in the first one's place; what
it refuses and Python accepts (``NaN`` and ``Infinity``, lone surrogate escapes, numbers out of the
float range, integers of thousands of digits) is decided by Python's decoder as before.
tests/test_bounded_json.py compares both on edge cases and on generated texts.
"""

import json
import re

try:  # pragma: no cover - the fallback is tested by forcing it
    import msgspec
except ImportError:  # pragma: no cover
    msgspec = None

MAX_JSON_DEPTH = 64
TOO_DEEP = 'JSON nested deeper than %d levels' % MAX_JSON_DEPTH
_MAX_INT_DIGITS = 4300  # sys.get_int_max_str_digits() by default

# A string of the text once its escaped quotes are gone: to its closing quote, or to the end.
_STRING = re.compile(r'"[^"]*(?:"|\Z)')
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_LEAF = re.compile(r'\[\]|\{\}')  # an empty array or object: one pass removes one level


class TooDeep(ValueError):
    """A JSON value nested deeper than MAX_JSON_DEPTH."""


def nested_deeper_than(text, limit=MAX_JSON_DEPTH):
    """Whether the JSON text nests arrays and objects deeper than `limit` (brackets inside strings
    do not count). Exact for valid JSON; for invalid JSON the decoder decides."""
    if text.count('[') + text.count('{') <= limit:
        return False
    if '\\' in text:
        text = text.replace('\\\\', '').replace('\\"', '')
    brackets = _NOT_BRACKET.sub('', _STRING.sub('', text))
    for _ in range(limit):
        inner = _LEAF.sub('', brackets)
        if len(inner) == len(brackets):
            return False  # nothing left to remove: empty, or unbalanced (not JSON)
        brackets = inner
    return '[]' in brackets or '{}' in brackets


def _bounded_int(digits):
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


class BoundedDecoder:
    """``decode`` / ``raw_decode`` of a ``json.JSONDecoder`` that raise `TooDeep` for a value nested
    deeper than MAX_JSON_DEPTH and read integers too long for ``int`` as infinities."""

    def __init__(self, **kwargs):
        self._decoder = json.JSONDecoder(**kwargs)
        self._lenient = json.JSONDecoder(parse_int=_bounded_int, **kwargs)

    def decode(self, text):
        value, end = self.raw_decode(text, _skip_whitespace(text, 0))
        end = _skip_whitespace(text, end)
        if end != len(text):
            raise ValueError('Extra data at %d' % end)
        return value

    def raw_decode(self, text, position=0):
        """(value, end) of the JSON value starting at `position`."""
        try:
            value, end = self._decoder.raw_decode(text, position)
        except RecursionError:
            raise TooDeep(TOO_DEEP) from None
        except ValueError:
            # An integer too long for int() (a rare, bad or hostile text): read it as a real.
            try:
                value, end = self._lenient.raw_decode(text, position)
            except RecursionError:
                raise TooDeep(TOO_DEEP) from None
        if nested_deeper_than(text[position:end]):
            raise TooDeep(TOO_DEEP)
        return value, end


_WHITESPACE = re.compile(r'[ \t\n\r]*')


def _skip_whitespace(text, position):
    return _WHITESPACE.match(text, position).end()


DECODER = BoundedDecoder()


DEFERRED = object()  # what `native_loads` returns for a text Python's decoder must decide


def native_loads(text):
    """msgspec's value of a str, or DEFERRED: without msgspec, for a text of more than
    MAX_JSON_DEPTH brackets, and for any text msgspec refuses."""
    if FAST_DECODE is None or text.count('[') + text.count('{') > MAX_JSON_DEPTH:
        return DEFERRED
    try:
        return FAST_DECODE(text)
    except (ValueError, UnicodeError):  # msgspec's errors
        return DEFERRED


def loads(text):
    """``json.loads`` of a str, bounded (`TooDeep`, long integers read as infinities)."""
    value = native_loads(text)
    return DECODER.decode(text) if value is DEFERRED else value


# The fast decoder of `loads` (None: Python's decoder only).
FAST_DECODE = msgspec.json.Decoder().decode if msgspec is not None else None
