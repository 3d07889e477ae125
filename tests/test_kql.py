"""KQL operator helpers on their tricky cases (Kusto docs examples first, then RE2/yyjson details)."""

import hashlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.detect import kql


@pytest.mark.parametrize('haystack, needle, expected', [
    ('North America', 'america', True),           # Kusto docs: case-insensitive whole term
    ('North America', 'amer', False),             # a prefix is not a term
    ('/subscriptions/x/providers/Microsoft.Compute/virtualMachines/vm1', 'virtualMachines', True),
    ('Microsoft.Compute/VIRTUALMACHINES/x', 'virtualMachines', True),
    ('virtualMachinesScaleSets', 'virtualMachines', False),
    ('myvirtualMachines', 'virtualMachines', False),
    ('virtualMachines_x', 'virtualMachines', True),   # '_' is not a letter or digit
    ('virtualMachines1', 'virtualMachines', False),
    ('virtualMachinesé', 'virtualMachines', False),   # non-ASCII letters are term characters
    ('x-File a', '-File', True),                      # boundary only where the needle has a letter/digit
    ('x-Filea', '-File', False),
    ('a-file b', '-File', True),
    ('', 'x', False),
    ('\u017fucceeded', 'Succeeded', True),            # RE2 folds LONG S with s
    ('\u0130t', 'it', False),                         # but not dotted capital I with i
    ('\u0131t', 'it', False),                         # nor dotless i
    ('wor\u212a', 'work', True),                      # KELVIN SIGN folds with k
])
def test_has_term(haystack, needle, expected):
    assert kql.has_term(haystack, needle) is expected


def test_has_term_shortcut_on_ascii_text_agrees_with_the_term_pattern():
    # has_term searches ASCII text without the regex: same answers.
    import random
    rnd = random.Random(3)
    pieces = ['virtualMachines', 'VIRTUALMACHINES', 'virtualmachine', '-File', '-file', 'Succeeded', 'x', '/',
              '_', '1', ' ', 'é', '\u017f', 'K', 'ucc', 'Su', 'eeded', '-', 'F', 'ile', 's', 'S', '\t', '"', '-Fi']
    for _ in range(20000):
        haystack = ''.join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 7)))
        for needle in ('virtualMachines', '-File', 'Succeeded', 'Success'):
            assert kql.has_term(haystack, needle) is (kql._term_pattern((needle,)).search(haystack) is not None)


@pytest.mark.parametrize('haystack, expected', [
    ('["Started","Accepted","Succeeded"]', True),
    ('["Start","Accept","Success"]', True),
    ('["Started","Accepted","PartiallySucceeded"]', False),
    ('["succeeded"]', True),
    ('["Succeeded-WithWarnings"]', True),
    ('["Failed"]', False),
    ('["Successful"]', False),
])
def test_has_any_term_on_status_list_text(haystack, expected):
    assert kql.has_any_term(haystack, ('Succeeded', 'Success')) is expected


@pytest.mark.parametrize('left, right, expected', [
    ('MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION', 'Microsoft.Compute/virtualMachines/runCommand/action', True),
    ('microsoft.compute/virtualmachines/runcommand/action', 'Microsoft.Compute/virtualMachines/runCommand/action', True),
    ('Microsoft.Compute/virtualMachines/runCommands/write', 'Microsoft.Compute/virtualMachines/runCommand/action', False),
    ('M\u0130CROSOFT', 'microsoft', True),     # simple lower-case mapping of U+0130 is 'i'
    ('\u212a', 'k', True),
    ('STRASSE', 'straße', False),
])
def test_equals_ignore_case(left, right, expected):
    assert kql.equals_ignore_case(left, right) is expected
    assert kql.equals_any_ignore_case(left, ('other', right)) is expected
    assert kql.equals_any_ignore_case(left, ('other', right)) is expected  # memoized: the same answer again


@given(st.text(alphabet='aAkK\u212a\u0130iIıß/. ', max_size=6),
       st.lists(st.text(alphabet='aAkK\u212a\u0130iIıß/. ', max_size=6), max_size=3))
@settings(max_examples=300, deadline=None)
def test_equals_any_ignore_case_is_equals_ignore_case_with_one_of_them(text, candidates):
    assert kql.equals_any_ignore_case(text, tuple(candidates)) == any(
        kql.equals_ignore_case(text, candidate) for candidate in candidates)


@pytest.mark.parametrize('text, expected', [
    ('Get-Process', 'GET-PROCESS'),
    ('straße', 'STRAßE'),              # .NET ToUpperInvariant keeps ß (Python's upper() gives SS)
    ('ǆ ǅ', 'Ǆ Ǆ'),
    ('ı', 'I'),
    ('ŉ', 'ŉ'),                        # no simple upper-case mapping
    ('\u1fb3', '\u1fbc'),              # simple mapping where the full mapping expands
    ('ﬀ', 'ﬀ'),
    ('', ''),
])
def test_to_upper_invariant(text, expected):
    assert kql.to_upper_invariant(text) == expected


@pytest.mark.parametrize('text, delimiter, index, expected', [
    ('/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1', '/', -1, 'vm1'),
    ('/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1', '/', 2, 's'),
    ('/a/b/', '/', -1, ''),
    ('', '/', -1, ''),                 # split("", "/") is [""]
    ('', '/', 2, None),                # out of range
    ('a/b', '/', 2, None),             # index == number of parts: out of range, not an error
    ('a/b', '/', 1, 'b'),
    ('a/b', '/', -2, 'a'),
    ('a/b', '/', -3, None),
    ('abc', '/', -2, None),
    ('web01.contoso.local', '.', 0, 'web01'),
])
def test_kusto_split_at(text, delimiter, index, expected):
    assert kql.kusto_split_at(text, delimiter, index) == expected


@pytest.mark.parametrize('value, expected', [
    (None, ''),
    ('text', 'text'),
    (['GET-PROCESS', 'WRITE-OUTPUT'], '["GET-PROCESS","WRITE-OUTPUT"]'),
    (['a"b', 'c\\d', 'e/f', 'é'], '["a\\"b","c\\\\d","e/f","é"]'),
    (['\x01', '\x1f', '\n', '\x7f'], '["\\u0001","\\u001F","\\n","\x7f"]'),   # yyjson: upper-case hex
    # A string with a control character takes another path: its quotes and backslashes are escaped too.
    (['a"b\x01', 'c\\d\t', '\\"\x1f'], '["a\\"b\\u0001","c\\\\d\\t","\\\\\\"\\u001F"]'),
    ({'k"\x02': '\\\x03'}, '{"k\\"\\u0002":"\\\\\\u0003"}'),
    ([False, True, None, 0], '[false,true,null,0]'),
    (False, 'false'),
    ({'b': 1, 'a': [1, 2.0, True, None]}, '{"b":1,"a":[1,2.0,true,null]}'),
    (5, '5'),
    (1.5, '1.5'),
    (True, 'true'),
])
def test_tostring_dynamic(value, expected):
    assert kql.tostring_dynamic(value) == expected


@pytest.mark.parametrize('command_line, expected', [
    ('powershell -ExecutionPolicy Unrestricted -File script0.ps1', 'script0.ps1'),
    ('powershell -File\tscript12.ps1', 'script12.ps1'),
    ('powershell -File  script1.ps1', ''),              # exactly one whitespace
    ('powershell -file script1.ps1', ''),               # case-sensitive
    ('powershell -File script1234567890.ps1', ''),      # at most 9 digits
    ('powershell -File script123456789.ps1', 'script123456789.ps1'),
    ('powershell -File script5.ps1x', 'script5.ps1'),   # unanchored
    ('powershell -File\x0bscript1.ps1', ''),            # RE2's \s has no vertical tab
    ('powershell -File\u00a0script1.ps1', ''),          # nor Unicode spaces
    ('a -File script1.ps1 -File script2.ps1', 'script1.ps1'),  # first match
    ('', ''),
])
def test_extract_script_name(command_line, expected):
    assert kql.extract_script_name(command_line) == expected


@pytest.mark.parametrize('value, low, high, expected', [
    (5, 5, 10, True), (10, 5, 10, True), (4, 5, 10, False), (11, 5, 10, False), (None, 5, 10, False)])
def test_between_is_inclusive(value, low, high, expected):
    assert kql.between(value, low, high) is expected


@pytest.mark.parametrize('caller, expected', [
    ('alice@contoso.com', ('alice', 'contoso.com')),
    ('9f2a1c3e-0000-4000-8000-000000000001', ('9f2a1c3e-0000-4000-8000-000000000001', '')),
    ('', ('', '')),
    ('a@b@c', ('a', 'b')),
])
def test_split_caller(caller, expected):
    assert kql.split_caller(caller) == expected


@pytest.mark.parametrize('text, expected', [
    ('{"scope": "/a"}', {'scope': '/a'}),
    ('{"scope": 5, "scope": 6}', {'scope': 5}),    # first key wins, as in the reference
    ('not json', 'not json'),
    ('NaN', 'NaN'),
    ('"x"', 'x'),
    ('\ufeff{"a": 1}', '\ufeff{"a": 1}'),          # a leading BOM is not JSON (json.loads refuses it too)
    (' [1, 2] ', [1, 2]),
])
def test_parse_json_text(text, expected):
    assert kql.parse_json_text(text) == expected


def test_json_text_of_single_values():
    assert [kql.json_text(value) for value in (False, True, None, 0, 'a"\\\x01')] == [
        'false', 'true', 'null', '0', '"a\\"\\\\\\u0001"']


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=40)
       | st.text(alphabet='ab"\\\x01\x1f\x7f\n\u2028\ud800é😀', max_size=12))
def test_the_json_text_of_a_string_is_the_escaping_reference(text):
    """The shortcut for strings with nothing to escape gives what the escaping path gives: json.dumps,
    except that control characters are escaped as yyjson does (upper-case hex, DEL kept)."""
    expected = json.dumps(text, ensure_ascii=False)
    expected = re.sub(r'\\\\|\\u00([0-9a-f]{2})',
                      lambda match: match.group(0) if match.group(1) is None else '\\u00' + match.group(1).upper(),
                      expected)
    assert kql.json_text(text) == expected


def test_the_fingerprint_of_a_list_with_quotes_backslashes_and_control_characters():
    # The fingerprint hashes the JSON text: an escaping mistake on any path changes every such alert.
    from transforms.detect.fingerprints import sentinel_fingerprint, strict_fingerprint
    cmdlets = ['WRITE-HOST "A\\B"\x01', 'GET-ITEM C:\\X']
    text = b'["WRITE-HOST \\"A\\\\B\\"\\u0001","GET-ITEM C:\\\\X"]'
    assert sentinel_fingerprint(cmdlets) == hashlib.sha256(text).hexdigest()
    assert strict_fingerprint(cmdlets, 12) == hashlib.sha256(
        b'{"cmdlets":' + text + b',"file_size":12}').hexdigest()
    assert strict_fingerprint(cmdlets, None) == hashlib.sha256(
        b'{"cmdlets":' + text + b',"file_size":null}').hexdigest()


@pytest.mark.parametrize('texts, expected', [
    # UTF-16 code units: the surrogate pair of U+1F600 (D83D DE00) is below U+FF21 (FULLWIDTH A);
    # code-point order would put the emoji last.
    (['\uff21Y', '\U0001F600X'], ['\U0001F600X', '\uff21Y']),
    (['\ue000', '\U00010000', '\ud7ff'], ['\ud7ff', '\U00010000', '\ue000']),
    # Elsewhere it is code-point order: upper case before lower case, '' first, duplicates kept.
    (['b', 'B', '', 'a', 'B', 'ß', 'Z'], ['', 'B', 'B', 'Z', 'a', 'b', 'ß']),
    (['\ud83d', '\U0001F600'], ['\ud83d', '\U0001F600']),   # a lone surrogate (from a JSON escape) is kept
])
def test_strings_sort_by_utf16_code_units_as_dotnet_ordinal(texts, expected):
    assert kql.sorted_ordinally(texts) == expected
