"""Hypothesis strategies of JSON texts, for the tests of the JSON decoders."""

import json

from hypothesis import strategies as st

_NUMBERS = st.one_of(
    st.integers(min_value=-10 ** 40, max_value=10 ** 40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r'-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?', fullmatch=True),
)
_STRINGS = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12).map(
    lambda text: json.dumps(text, ensure_ascii=False).replace('\ud800', '\\ud800'))
_ESCAPED = st.text(max_size=8).map(json.dumps)  # ASCII, with \\u escapes (lone surrogates among them)
_LEAVES = st.one_of(_NUMBERS, _STRINGS, _ESCAPED, st.sampled_from(['true', 'false', 'null', 'NaN', '-Infinity']))
_SPACE = st.sampled_from(['', ' ', '\n', '\t', '\r', ' \t'])


def json_texts():
    """JSON texts: nested arrays and objects (duplicate keys among them) of numbers, strings and
    constants, with whitespace; NaN, lone surrogate escapes and out-of-range numbers included."""
    def containers(children):
        items = st.lists(st.tuples(_SPACE, children, _SPACE), max_size=4)
        arrays = items.map(lambda parts: '[%s]' % ','.join(a + value + b for a, value, b in parts))
        keys = st.one_of(_STRINGS, st.sampled_from(['"a"', '"b"', '"a:b"']))
        members = st.lists(st.tuples(keys, _SPACE, children), max_size=4)
        objects = members.map(lambda parts: '{%s}' % ','.join('%s%s:%s' % member for member in parts))
        return st.one_of(arrays, objects)
    return st.recursive(_LEAVES, containers, max_leaves=12)
