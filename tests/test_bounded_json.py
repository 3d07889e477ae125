"""transforms.read.bounded_json.loads: its msgspec path returns what Python's decoder does, or defers to it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.json_texts import json_texts

from transforms.read import bounded_json, dynamic
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


@settings(max_examples=400, deadline=None)
@given(text=json_texts(), cut=st.integers(min_value=0, max_value=400), junk=st.sampled_from(['', '}', ',', 'x', '"']))
def test_loads_gives_what_pythons_decoder_gives_on_generated_texts(text, cut, junk):
    assert outcome(loads, text) == outcome(DECODER.decode, text)
    broken = text[:cut] + junk + text[cut + 1:]  # one character replaced or removed
    assert outcome(loads, broken) == outcome(DECODER.decode, broken)


# transforms.read.dynamic.parse_json_text (Kusto parse_json: the first of duplicate keys kept, NaN
# not JSON, a text that is not JSON kept as the string): its msgspec path against Python's decoder.

def parse_json_reference(text):
    try:
        return dynamic._JSON_DECODER.decode(text)
    except ValueError:
        return text


PARSE_JSON_CASES = EDGE_CASES + [
    '{"a":1,"a":2}', '{"a" :1, "a":2, "b":3}', '{"a":{"b":1,"b":2}}', '[{"a":1},{"a":2}]', '{"a":"x\\":y","a":2}',
    '{"a:b":1,"a:b":2}', '"a:b"', '12', '"x"', 'abc', 'NaN', '{"Command":"Write-Log"}', ' [] ', '{}',
]


@pytest.mark.parametrize('text', PARSE_JSON_CASES)
def test_parse_json_text_gives_what_pythons_decoder_gives_on_edge_cases(text):
    assert _typed_repr(dynamic.parse_json_text(text)) == _typed_repr(parse_json_reference(text))


def test_parse_json_text_decodes_plain_texts_natively_and_defers_duplicate_keys():
    assert dynamic._fast_parse('{"Command":"Write-Log","a":[{"b":1}]}') == {'Command': 'Write-Log', 'a': [{'b': 1}]}
    for text in ('{"a":1,"a":2}', '{"a":{"b":1,"b" : 2}}', '{"a":NaN}', '{"a":"\\udc00"}', 'x'):
        assert dynamic._fast_parse(text) is dynamic.DEFERRED


@settings(max_examples=400, deadline=None)
@given(text=json_texts(), cut=st.integers(min_value=0, max_value=400), junk=st.sampled_from(['', '}', ':', 'x', '"']))
def test_parse_json_text_gives_what_pythons_decoder_gives_on_generated_texts(text, cut, junk):
    assert _typed_repr(dynamic.parse_json_text(text)) == _typed_repr(parse_json_reference(text))
    broken = text[:cut] + junk + text[cut + 1:]
    assert _typed_repr(dynamic.parse_json_text(broken)) == _typed_repr(parse_json_reference(broken))
