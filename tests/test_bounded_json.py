"""transforms.read.bounded_json.loads: its msgspec path returns what Python's decoder does, or defers to it."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.read import bounded_json
from transforms.read.bounded_json import DECODER, MAX_JSON_DEPTH, TooDeep, loads

pytestmark = pytest.mark.skipif(bounded_json.FAST_DECODE is None, reason='msgspec does not import')


def outcome(decode, text):
    """What decoding `text` gives: ('value', repr of the value and of its types) or ('error', kind)."""
    try:
        value = decode(text)
    except TooDeep:
        return 'error', 'too deep'
    except ValueError:
        return 'error', 'not JSON'
    return 'value', _typed_repr(value)


def _typed_repr(value):
    # repr alone does not tell 1 from 1.0 inside containers in every case, nor key order: both do here.
    if isinstance(value, dict):
        return '{%s}' % ','.join('%r:%s' % (key, _typed_repr(item)) for key, item in value.items())
    if isinstance(value, list):
        return '[%s]' % ','.join(_typed_repr(item) for item in value)
    return '%s(%r)' % (type(value).__name__, value)


EDGE_CASES = [
    '{"a":1}', ' {"a": [1, 2.5, -0, -0.0, 1E5, 1e-400, -1e-400, true, false, null]} ',
    '{"a":1,"b":2,"a":3}',  # duplicate keys: the last value, in the first one's place
    '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}',  # Python accepts, msgspec refuses
    '{"a":1e309}', '{"a":-1e400}',  # out of the float range: Python reads infinities
    '{"a":%s}' % ('9' * 5000), '{"a":%s}' % ('9' * 4300), '{"a":-%s}' % ('1' * 4301),  # integer bounds
    '{"a":%s.5}' % ('9' * 400), '{"a":9223372036854775808}', '{"a":-18446744073709551617}',
    '{"a":"\\udc00"}', '{"a":"\\ud800x"}', '{"a":"\\ud83d\\ude00"}', '{"a":"\ud800"}',  # surrogates
    '{"a":"\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"}', '{"a":"é\x7f"}',
    '{"a":"x\x01y"}', '{"a":"x\ty"}', '{\x0b"a":1}', '{\xa0"a":1}', '{"a":1}\u2028', '{"a":1}\x0c',
    '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":-}', '{"a":+1}', '{"a":1,}', '{"a":"\\x"}', '{"a":1}{}', '',
    '[' * MAX_JSON_DEPTH + ']' * MAX_JSON_DEPTH, '[' * (MAX_JSON_DEPTH + 1) + ']' * (MAX_JSON_DEPTH + 1),
    '{"a":"' + '[' * 100 + '"}',  # brackets inside a string: Python's path, same value
    '{"a":1.7976931348623157e308,"b":4.9e-324,"c":2.4703282292062328e-324,"d":0.1,"e":123456789012345678.5}',
]


@pytest.mark.parametrize('text', EDGE_CASES)
def test_loads_gives_what_pythons_decoder_gives_on_edge_cases(text):
    assert outcome(loads, text) == outcome(DECODER.decode, text)


def test_the_fast_path_decodes_plain_texts_and_leaves_deep_ones_to_python(monkeypatch):
    seen = []

    def spy(text):
        seen.append(text)
        return bounded_json.msgspec.json.decode(text)

    monkeypatch.setattr(bounded_json, 'FAST_DECODE', spy)
    assert loads('{"a":[1]}') == {'a': [1]}
    deep = '[' * (MAX_JSON_DEPTH + 1) + ']' * (MAX_JSON_DEPTH + 1)
    with pytest.raises(TooDeep):
        loads(deep)
    assert seen == ['{"a":[1]}']


def test_without_msgspec_loads_is_pythons_decoder(monkeypatch):
    monkeypatch.setattr(bounded_json, 'FAST_DECODE', None)
    for text in EDGE_CASES:
        assert outcome(loads, text) == outcome(DECODER.decode, text)


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


def _json_texts():
    def containers(children):
        items = st.lists(st.tuples(_SPACE, children, _SPACE), max_size=4)
        arrays = items.map(lambda parts: '[%s]' % ','.join(a + value + b for a, value, b in parts))
        members = st.lists(st.tuples(st.one_of(_STRINGS, st.sampled_from(['"a"', '"b"'])), children), max_size=4)
        objects = members.map(lambda parts: '{%s}' % ','.join('%s:%s' % pair for pair in parts))
        return st.one_of(arrays, objects)
    return st.recursive(_LEAVES, containers, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(text=_json_texts(), cut=st.integers(min_value=0, max_value=400), junk=st.sampled_from(['', '}', ',', 'x', '"']))
def test_loads_gives_what_pythons_decoder_gives_on_generated_texts(text, cut, junk):
    assert outcome(loads, text) == outcome(DECODER.decode, text)
    broken = text[:cut] + junk + text[cut + 1:]  # one character replaced or removed
    assert outcome(loads, broken) == outcome(DECODER.decode, broken)
