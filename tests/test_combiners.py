"""Every CombineFn of the detection, as Beam's own combiners_test checks its combiners.

For each: ``add_input`` over all the values, and ``merge_accumulators`` of two non-empty accumulators
in both orders (and with an empty one), give the same ``extract_output``. The two shards are chosen so
that each holds a different extreme (the earliest start in one, the latest end and the largest IP in
the other), so that a merge taking the wrong one gives another output. Then the in-memory
CombinePerKey and CoGroupByKey that the streaming evaluator uses.
"""

import json

import pytest

from transforms.detect.dedup import Distinct, DistinctRecordsCombineFn, FirstRow, FirstRowCombineFn
from transforms.detect.fingerprints import HashCount, HashCountCombineFn
from transforms.detect.in_memory import co_group_by_key, combine_per_key
from transforms.detect.script_cmdlets import CmdletEvent, CmdletList, CmdletListCombineFn
from transforms.detect.sessions import SessionCombineFn, SessionSummary
from transforms.read.ingest import parse_datetime_us


def fold(combine_fn, values):
    accumulator = combine_fn.create_accumulator()
    for value in values:
        accumulator = combine_fn.add_input(accumulator, value)
    return accumulator


def assert_combines(combine_fn, first, second, expected):
    """All of `first` + `second` through add_input, and the merge of their two accumulators in both
    orders and with an empty accumulator, extract to `expected`."""
    assert first and second
    assert combine_fn.extract_output(fold(combine_fn, first + second)) == expected
    for shards in ((first, second), (second, first)):
        accumulators = [fold(combine_fn, shard) for shard in shards]
        assert combine_fn.extract_output(combine_fn.merge_accumulators(accumulators)) == expected
    everything = [fold(combine_fn, first + second), combine_fn.create_accumulator()]
    assert combine_fn.extract_output(combine_fn.merge_accumulators(everything)) == expected
    assert combine_fn.extract_output(combine_fn.merge_accumulators(everything[::-1])) == expected


def t(text):
    return parse_datetime_us(text)


def activity(time, status, ip):
    return {'TimeGenerated': t(time), 'ActivityStatusValue': status, 'CallerIpAddress': ip}


def test_session_summary():
    # The earliest row and the ordinal-largest IP (9.9.9.9 > 10.1.1.1) in one shard, the latest row
    # and the success in the other.
    first = [activity('2024-03-01T10:00:05Z', 'Accept', '10.1.1.1'),
             activity('2024-03-01T10:00:09Z', 'Succeeded', '10.1.1.1')]
    second = [activity('2024-03-01T10:00:00Z', 'Start', '9.9.9.9'),
              activity('2024-03-01T10:00:07Z', 'Started', '10.1.1.2')]
    assert_combines(SessionCombineFn(), first, second, SessionSummary(
        start=t('2024-03-01T10:00:00Z'), end=t('2024-03-01T10:00:09Z'), max_ip='9.9.9.9', succeeded=True))


@pytest.mark.parametrize('statuses, succeeded', [
    (['Start', 'Accept', 'Success'], True),
    (['Started', 'Accepted', 'Succeeded'], True),
    (['Started', 'PartiallySucceeded'], False),   # has_any on the list's text: not the term Succeeded
    (['Start', 'Failure'], False),
])
def test_session_succeeded_when_any_status_has_the_term(statuses, succeeded):
    rows = [activity('2024-03-01T10:00:0%dZ' % n, status, '10.0.0.1') for n, status in enumerate(statuses)]
    assert SessionCombineFn().extract_output(fold(SessionCombineFn(), rows)).succeeded is succeeded


def test_cmdlet_list():
    # The earliest event in the second shard, the latest in the first; "" is a cmdlet (sentinel).
    first = [CmdletEvent(20, 'B'), CmdletEvent(30, 'A')]
    second = [CmdletEvent(10, 'C'), CmdletEvent(25, '')]
    assert_combines(CmdletListCombineFn(), first, second, CmdletList(start=10, end=30, cmdlets=['', 'A', 'B', 'C']))


def test_cmdlet_list_keeps_duplicates_and_sorts_ordinally():
    events = [CmdletEvent(1, 'get-process'), CmdletEvent(2, 'GET-PROCESS'), CmdletEvent(3, 'GET-PROCESS'),
              CmdletEvent(4, 'STRAßE')]
    assert CmdletListCombineFn().extract_output(fold(CmdletListCombineFn(), events)) == CmdletList(
        1, 4, ['GET-PROCESS', 'GET-PROCESS', 'STRAßE', 'get-process'])


ROW_A = {'ScriptFingerprintHash': 'f', 'VirtualMachineName': 'vm-a'}
ROW_B = {'ScriptFingerprintHash': 'f', 'VirtualMachineName': 'vm-b'}


def test_hash_count_of_two_rows_keeps_no_row():
    assert_combines(HashCountCombineFn(), [ROW_A], [ROW_B], HashCount(count=2, only_row=None))
    assert_combines(HashCountCombineFn(), [ROW_A, ROW_B], [ROW_A], HashCount(count=3, only_row=None))


def test_hash_count_of_one_row_keeps_it():
    combine_fn = HashCountCombineFn()
    assert combine_fn.extract_output(fold(combine_fn, [ROW_A])) == HashCount(1, ROW_A)
    for accumulators in ([fold(combine_fn, [ROW_A]), fold(combine_fn, [])],
                         [fold(combine_fn, []), fold(combine_fn, [ROW_A])]):
        assert combine_fn.extract_output(combine_fn.merge_accumulators(accumulators)) == HashCount(1, ROW_A)


def canonical(row):
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(',', ':'))


def test_first_row_in_canonical_order_and_the_count():
    smallest = {'EventDataId': 'e1', 'Caller': 'alice'}
    first = [{'EventDataId': 'e1', 'Caller': 'bob'}, {'EventDataId': 'e1', 'Caller': 'carol'}]
    assert_combines(FirstRowCombineFn(), first, [smallest], FirstRow(canonical(smallest), smallest, 3))
    assert_combines(FirstRowCombineFn(), [smallest], first, FirstRow(canonical(smallest), smallest, 3))


def test_distinct_records_keep_each_content_once_and_count_every_record():
    copy = {'EventDataId': 'e1', 'CallerIpAddress': '10.0.0.1'}
    other = {'EventDataId': 'e1', 'CallerIpAddress': '9.9.9.9'}
    # Distinct contents in canonical order, whichever shard saw them first; four records in all.
    expected = Distinct({canonical(copy): copy, canonical(other): other}, 4)
    assert_combines(DistinctRecordsCombineFn(), [copy, dict(copy)], [other, dict(copy)], expected)
    assert_combines(DistinctRecordsCombineFn(), [other], [copy, dict(copy), dict(other)], expected)


def test_combine_per_key_in_memory():
    pairs = [('s1', CmdletEvent(5, 'B')), ('s2', CmdletEvent(1, 'X')), ('s1', CmdletEvent(3, 'A'))]
    assert combine_per_key(pairs, CmdletListCombineFn()) == {
        's1': CmdletList(3, 5, ['A', 'B']), 's2': CmdletList(1, 1, ['X'])}
    assert combine_per_key([], CmdletListCombineFn()) == {}


def test_co_group_by_key_in_memory():
    grouped = co_group_by_key({'runs': [('vm1', 'r1'), ('vm2', 'r2'), ('vm1', 'r3')], 'files': [('vm1', 'f1'),
                                                                                               ('vm3', 'f3')]})
    assert grouped == {'vm1': {'runs': ['r1', 'r3'], 'files': ['f1']}, 'vm2': {'runs': ['r2'], 'files': []},
                       'vm3': {'runs': [], 'files': ['f3']}}


def test_cmdlet_list_sorts_by_utf16_code_units_in_both_semantics():
    # .NET's ordinal order: '😀X' (surrogates D83D DE00) before 'ＡY' (U+FF21), unlike code-point order.
    events = [CmdletEvent(1, '\uff21Y'), CmdletEvent(2, '\U0001F600X'), CmdletEvent(3, 'A')]
    assert CmdletListCombineFn().extract_output(fold(CmdletListCombineFn(), events)).cmdlets == [
        'A', '\U0001F600X', '\uff21Y']
