"""Dynamic (JSON) values as text: the JSON text Kusto writes, ``parse_json``, and canonical JSON.

* `json_text`: the compact JSON text of a dynamic value with yyjson's escaping, the reference's JSON
  writer: control characters below U+0020 as their short escape or ``\\u00XX`` with upper-case
  hex; DEL, non-ASCII characters and ``/`` raw.
* `tostring_dynamic`: Kusto ``tostring()`` of a dynamic value, which is also how Log Analytics
  ingestion types a JSON value in a string column: null is ``""``, a string stays, anything else
  is its `json_text`.
* `parse_json_text`: Kusto ``parse_json(string)``: the value, or the string itself when it is not
  JSON (also when it nests deeper than `transforms.read.bounded_json.MAX_JSON_DEPTH`: the text is
  kept as a string, as for any text parse_json cannot read); duplicate keys keep their first value,
  as the reference's JSON reader does. msgspec decodes the texts where it cannot differ from
  Python's decoder with these rules (`_fast_parse`), Python's decoder all others.
* `canonical_json`: the one text that orders and identifies rows in the detection (record identity,
  one row per strict session, alert ids): compact, keys sorted, non-ASCII characters raw.
"""

import json
import re

from transforms.read.bounded_json import DEFERRED, BoundedDecoder, native_loads

_CONTROL = re.compile('[\x00-\x1f\x7f]')
_ESCAPES = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t'}


def _escape_char(match):
    ch = match.group(0)
    if ch == '\x7f':
        return ch
    return _ESCAPES.get(ch) or '\\u%04X' % ord(ch)


def _json_string(text):
    if _CONTROL.search(text) is None:
        if '"' not in text and '\\' not in text:
            # Nothing to escape: what json.dumps gives, without its 2 µs of set-up per call.
            return '"' + text + '"'
        return json.dumps(text, ensure_ascii=False)
    escaped = text.replace('\\', '\\\\').replace('"', '\\"')
    return '"' + _CONTROL.sub(_escape_char, escaped) + '"'


def json_text(value):
    """Compact JSON text of a dynamic value, escaped as Kusto/yyjson write it."""
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return '[' + ','.join(_json_string(v) for v in value) + ']'
        return '[' + ','.join(json_text(v) for v in value) + ']'
    if isinstance(value, dict):
        return '{' + ','.join(_json_string(k) + ':' + json_text(v) for k, v in value.items()) + '}'
    if value is None:
        return 'null'
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    return json.dumps(value)


def tostring_dynamic(value):
    """Kusto ``tostring(dynamic)``: null -> ``""``, a string as is, anything else as compact JSON."""
    if value is None:
        return ''
    if isinstance(value, str):
        return value
    return json_text(value)


def _first_key_wins(pairs):
    result = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


def _reject_constant(name):
    raise ValueError('not JSON: ' + name)


def parse_json_text(text):
    """Kusto ``parse_json(string)``: the JSON value, or the string itself when it is not JSON."""
    try:
        if isinstance(text, str):
            value = _fast_parse(text)
            return _JSON_DECODER.decode(text) if value is DEFERRED else value
        return _JSON_DECODER.decode(bytes(text).decode('utf-8'))
    except ValueError:  # not JSON, nested too deep, or bytes that are not UTF-8
        return text


_JSON_DECODER = BoundedDecoder(object_pairs_hook=_first_key_wins, parse_constant=_reject_constant)


def _fast_parse(text):
    """`parse_json_text` of a str by msgspec (`transforms.read.bounded_json.native_loads`), or
    DEFERRED where it might differ, for Python's decoder to decide: what native_loads defers (too
    many brackets; NaN, lone surrogate escapes, numbers out of range, anything not JSON), and a
    text whose objects hold fewer keys than it has colons. msgspec keeps the last of duplicate keys
    where parse_json keeps the first; every key is followed by one colon, so duplicates make the
    keys fewer than the colons and such a text is deferred (as is one with a colon inside a
    string: safe, and a few microseconds more)."""
    value = native_loads(text)
    if (value.__class__ is dict or value.__class__ is list) and _key_count(value) != text.count(':'):
        return DEFERRED
    return value


def _key_count(value):
    """The number of keys of the objects in a decoded JSON value (a dict or a list)."""
    if value.__class__ is dict:
        count = len(value)
        items = value.values()
    else:
        count = 0
        items = value
    for item in items:
        if item.__class__ is dict or item.__class__ is list:
            count += _key_count(item)
    return count


def canonical_json(value):
    """The canonical JSON text of a value: compact, keys sorted, non-ASCII characters raw."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(',', ':'))
