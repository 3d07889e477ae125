"""Sentinel and strict semantics side by side: the same rows, and every documented difference.

Each scenario lives on its own day (its own daily window; `scenario.semantics_scenarios`), so that the
scenarios do not interact. The batch transforms evaluate them once in both semantics (the
``scenario_batch_alerts`` fixture); each test reads its day's results, and the in-memory evaluation
that streaming uses must give the same results, day by day, in both semantics.
"""

import json

import pytest

from pipelines.rare_runcommand import semantics_of
from pipelines.options import DetectionOptions
from scenario import semantics_scenarios
from transforms.detect.rule import load_rule
from transforms.detect.semantics import NAMES, Semantics
from transforms.detect.streaming import alerts_by_id
from transforms.read.ingest import parse_datetime_us

DAY = 86_400_000_000


def day(found, semantics, number):
    return [alert['QueryResult'] for alert in found[semantics].get(number, [])]


def test_managed_run_commands_only_in_strict(scenario_batch_alerts):
    assert day(scenario_batch_alerts, 'sentinel', 1) == []
    [result] = day(scenario_batch_alerts, 'strict', 1)
    assert result['VirtualMachineName'] == 'vm1'


def test_host_names_match_ignoring_case_only_in_strict(scenario_batch_alerts):
    assert day(scenario_batch_alerts, 'sentinel', 2) == []
    [result] = day(scenario_batch_alerts, 'strict', 2)
    assert result['PowershellScriptCommands'] == ['GET-SERVICE']


def test_cmdlets_pooled_across_vms_only_in_sentinel(scenario_batch_alerts):
    sentinel = day(scenario_batch_alerts, 'sentinel', 3)
    strict = day(scenario_batch_alerts, 'strict', 3)
    # sentinel: both sessions join the one pooled list, which then occurs twice: no alert.
    assert sentinel == []
    assert sorted((r['VirtualMachineName'], tuple(r['PowershellScriptCommands'])) for r in strict) == [
        ('vm1', ('GET-PROCESS',)), ('vm2', ('GET-SERVICE',))]


def test_only_non_empty_powershell_commands_in_strict(scenario_batch_alerts):
    [sentinel] = day(scenario_batch_alerts, 'sentinel', 4)
    [strict] = day(scenario_batch_alerts, 'strict', 4)
    assert sentinel['PowershellScriptCommands'] == ['', 'GET-PROCESS', 'INVOKE-EXPRESSION']
    assert strict['PowershellScriptCommands'] == ['GET-PROCESS']


def test_file_size_is_part_of_the_strict_fingerprint(scenario_batch_alerts):
    assert day(scenario_batch_alerts, 'sentinel', 5) == []
    assert sorted(r['PowershellFileSize'] for r in day(scenario_batch_alerts, 'strict', 5)) == [100, 999]


def test_strict_counts_sessions_not_rows(scenario_batch_alerts):
    assert day(scenario_batch_alerts, 'sentinel', 6) == []
    [result] = day(scenario_batch_alerts, 'strict', 6)
    assert result['Prevalence'] == 100.0


def test_duplicate_records_dropped_only_in_strict(scenario_batch_alerts):
    # sentinel: the duplicated events change vm2's list, so each fingerprint is unique.
    assert len(day(scenario_batch_alerts, 'sentinel', 7)) == 2
    assert day(scenario_batch_alerts, 'strict', 7) == []


def test_strict_counts_only_cmdlets_of_the_session(scenario_batch_alerts):
    sentinel = day(scenario_batch_alerts, 'sentinel', 8)
    [strict] = day(scenario_batch_alerts, 'strict', 8)
    assert strict['PowershellScriptCommands'] == ['GET-PROCESS']
    assert ['GET-PROCESS', 'REMOVE-ITEM'] in [r['PowershellScriptCommands'] for r in sentinel]


def test_script_writers_ignore_case_and_include_the_handler_only_in_strict(scenario_batch_alerts):
    assert day(scenario_batch_alerts, 'sentinel', 9) == []
    assert sorted(r['VirtualMachineName'] for r in day(scenario_batch_alerts, 'strict', 9)) == ['vm1', 'vm2']


def test_records_sharing_an_identity_with_other_content_are_kept_in_strict(scenario_batch_alerts):
    # Not copies: both records count, in strict as in sentinel.
    assert [r['CallerIpAddress'] for r in day(scenario_batch_alerts, 'sentinel', 10)] == ['9.9.9.9']
    assert [r['CallerIpAddress'] for r in day(scenario_batch_alerts, 'strict', 10)] == ['9.9.9.9']
    assert day(scenario_batch_alerts, 'sentinel', 11) == []
    assert sorted(r['PowershellFileSize'] for r in day(scenario_batch_alerts, 'strict', 11)) == [500, 900]


def test_scenarios_cover_every_day_in_some_semantics(scenario_batch_alerts):
    assert sorted(set(scenario_batch_alerts['sentinel']) | set(scenario_batch_alerts['strict'])) == list(range(1, 12))


@pytest.mark.parametrize('name', NAMES)
def test_the_in_memory_evaluation_gives_the_batch_alerts_day_by_day(scenario_batch_alerts, name):
    # What the streaming evaluator computes for each daily window from that window's rows.
    tables = semantics_scenarios().typed()
    for number in range(1, 12):
        start = parse_datetime_us('2024-05-%02dT00:00:00Z' % number)
        rows = {table: [row for row in table_rows if start <= row['TimeGenerated'] < start + DAY]
                for table, table_rows in tables.items()}
        in_memory = alerts_by_id(rows, Semantics.named(name), load_rule(), (start, start + DAY))
        batch = {alert['SystemAlertId']: alert for alert in scenario_batch_alerts[name].get(number, [])}
        assert sorted(in_memory) == sorted(batch), number
        assert json.dumps(in_memory, sort_keys=True) == json.dumps(batch, sort_keys=True)


def test_options_choose_the_semantics_and_its_settings():
    strict = semantics_of(DetectionOptions([
        '--semantics', 'strict', '--strict_operations', 'Op/a, Op/b', '--strict_process_names', 'x.exe',
        '--strict_exec_tolerance', '90s']))
    assert strict == Semantics('strict', ('Op/a', 'Op/b'), ('x.exe',), 90_000_000)
    assert semantics_of(DetectionOptions([])) == Semantics.named('sentinel')
    assert semantics_of(DetectionOptions(['--semantics', 'strict'])) == Semantics.named('strict')
