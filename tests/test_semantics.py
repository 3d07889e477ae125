"""Sentinel and strict semantics side by side: the same rows, and every documented difference.

Each scenario lives on its own day (its own daily window; `scenario.SCENARIOS`), so that the scenarios
do not interact. The batch transforms evaluate them once in both semantics (the
``scenario_batch_alerts`` fixture); each test reads its scenario's results, and the in-memory evaluation
that streaming uses must give the same results, day by day, in both semantics. Each test's data make
one row of the README's table decide the outcome: with that row's strict behaviour removed, the test
fails.
"""

import collections
import hashlib
import json

import pytest

from pipelines.options import DetectionOptions
from pipelines.rare_runcommand import semantics_of
from scenario import DAYS, DAYS_USED, SEMANTICS, WINDOWS, Tenant, at, run_alerts, semantics_scenarios
from transforms.detect.query import evaluate_window, window_run_command_data_of
from transforms.detect.rule import load_rule
from transforms.detect.semantics import NAMES, Semantics
from transforms.detect.streaming import alerts_by_id
from transforms.read.ingest import parse_datetime_us

HOUR = 3_600_000_000


def results(found, semantics, name, day_offset=0):
    """The QueryResults of scenario `name` (its day, or `day_offset` days later) under `semantics`."""
    return [alert['QueryResult'] for alert in found[semantics].get(DAYS[name] + day_offset, [])]


def cmdlet_lists(found, semantics, name):
    return sorted(tuple(result['PowershellScriptCommands']) for result in results(found, semantics, name))


def rows_read_by(name, semantics_name):
    """{window: {table: rows}} of scenario `name`'s day as `semantics_name`'s windows read them."""
    start = parse_datetime_us(at(DAYS[name], 0))
    window = (start, start + 24 * HOUR)
    tables = semantics_scenarios().typed()
    rows = {table: [row for row in table_rows if window in WINDOWS[semantics_name].windows_in_range(row['TimeGenerated'])]
            for table, table_rows in tables.items()}
    return window, rows


def strict_results_with(name, **settings):
    """Strict's result rows of scenario `name` with other strict settings (the in-memory evaluation)."""
    window, rows = rows_read_by(name, 'strict')
    return evaluate_window(rows, Semantics.named('strict', **settings), window)


def fingerprint(cmdlets, size):
    return hashlib.sha256(json.dumps({'cmdlets': cmdlets, 'file_size': size}, separators=(',', ':')).encode()).hexdigest()


# ---------------------------------------------------------------- 1: Run Command operations
@pytest.mark.parametrize('name, vm', [('managed_vm', 'vm1'), ('scale_set_vm_action', 'ss1_3'),
                                      ('scale_set_vm_managed', 'ss1_10'), ('arc_machine', 'arc1')])
def test_managed_scale_set_and_arc_run_commands_only_in_strict(scenario_batch_alerts, name, vm):
    assert results(scenario_batch_alerts, 'sentinel', name) == []
    [result] = results(scenario_batch_alerts, 'strict', name)
    assert result['VirtualMachineName'] == vm


def test_strict_operations_option_limits_the_operations():
    assert len(strict_results_with('arc_machine')) == 1
    assert strict_results_with('arc_machine', operations=('Microsoft.Compute/virtualMachines/runCommands/write',)) == []


# ------------------------------------------------------------------ 2: the machine of a scope
def test_machine_name_is_read_after_the_resource_type_only_in_strict(scenario_batch_alerts):
    # A VM named "machines" and an Arc machine named "virtualMachines", both with a managed Run Command.
    assert results(scenario_batch_alerts, 'sentinel', 'vm_named_machines') == []
    assert sorted(r['VirtualMachineName'] for r in results(scenario_batch_alerts, 'strict', 'vm_named_machines')) == [
        'machines', 'virtualMachines']


def test_a_scope_ending_with_a_slash_names_its_vm_only_in_strict(scenario_batch_alerts):
    # The action form, which sentinel watches: its VM name is "" (the last segment), which no device has.
    assert results(scenario_batch_alerts, 'sentinel', 'trailing_slash') == []
    [result] = results(scenario_batch_alerts, 'strict', 'trailing_slash')
    assert result['VirtualMachineName'] == 'vm1'


# ------------------------------------------------------------- 3: the VM's Defender device
def test_host_names_match_ignoring_case_only_in_strict(scenario_batch_alerts):
    assert results(scenario_batch_alerts, 'sentinel', 'host_name_case') == []
    [result] = results(scenario_batch_alerts, 'strict', 'host_name_case')
    assert result['PowershellScriptCommands'] == ['GET-SERVICE']


def test_a_scale_set_vm_joins_its_computer_name_with_the_given_prefix(scenario_batch_alerts):
    # --strict_scale_set_prefixes web-ss=web: instance 35 is web00000Z; instance 36 is not web-ss000010,
    # the name the default prefix would give.
    [result] = results(scenario_batch_alerts, 'strict', 'scale_set_prefix')
    assert (result['VirtualMachineName'], result['PowershellScriptCommands']) == ('web-ss_35', ['GET-WEBSITE'])
    defaults = strict_results_with('scale_set_prefix')
    assert [(r['VirtualMachineName'], r['PowershellScriptCommands']) for r in defaults] == [
        ('web-ss_36', ['STOP-WEBSITE'])]


# --------------------------------------------------------------------- 4: cmdlets per VM
def test_cmdlets_pooled_across_vms_only_in_sentinel(scenario_batch_alerts):
    # The same script name at the same moment on two VMs: sentinel pools both VMs' cmdlets into one
    # list, which both sessions then join: one fingerprint twice, no alert.
    assert results(scenario_batch_alerts, 'sentinel', 'same_script_name_on_two_vms') == []
    strict = results(scenario_batch_alerts, 'strict', 'same_script_name_on_two_vms')
    assert sorted((r['VirtualMachineName'], tuple(r['PowershellScriptCommands'])) for r in strict) == [
        ('vm1', ('GET-PROCESS',)), ('vm2', ('GET-SERVICE',))]


# ---------------------------------------------------------- 5: the cmdlets of the script run
def test_a_script_that_sleeps_before_its_first_cmdlet_is_found_by_both(scenario_batch_alerts):
    # Its first cmdlet runs six minutes after the session ended: no fixed tolerance cuts it off.
    expected = [('GET-PROCESS', 'STOP-PROCESS')]
    assert cmdlet_lists(scenario_batch_alerts, 'sentinel', 'script_that_sleeps') == expected
    assert cmdlet_lists(scenario_batch_alerts, 'strict', 'script_that_sleeps') == expected


def test_a_reused_script_name_ends_the_previous_run(scenario_batch_alerts):
    # Upper bound: mallory's session writes script0.ps1 again three minutes after alice's; each caller
    # gets the cmdlets of their own run (sentinel pools both into one list: no alert).
    assert results(scenario_batch_alerts, 'sentinel', 'script_name_reused_by_another_caller') == []
    strict = results(scenario_batch_alerts, 'strict', 'script_name_reused_by_another_caller')
    assert sorted((r['Caller'], tuple(r['PowershellScriptCommands'])) for r in strict) == [
        ('alice@contoso.com', ('GET-PROCESS',)), ('mallory@contoso.com', ('INVOKE-MIMIKATZ',))]


def test_cmdlets_run_before_the_file_was_written_are_not_the_run(scenario_batch_alerts):
    # Lower bound: a process ran script0.ps1 an hour before this session wrote it.
    assert cmdlet_lists(scenario_batch_alerts, 'sentinel', 'cmdlets_before_the_file') == [('GET-PROCESS', 'REMOVE-ITEM')]
    assert cmdlet_lists(scenario_batch_alerts, 'strict', 'cmdlets_before_the_file') == [('GET-PROCESS',)]


def test_a_run_starting_later_than_the_run_delay_is_not_the_sessions(scenario_batch_alerts):
    # The process starts 2 h after the session's end: beyond the default 1 h, within 3 h.
    assert cmdlet_lists(scenario_batch_alerts, 'sentinel', 'run_long_after_the_session') == [('GET-PROCESS',)]
    assert results(scenario_batch_alerts, 'strict', 'run_long_after_the_session') == []
    longer = strict_results_with('run_long_after_the_session', max_run_delay_us=3 * HOUR)
    assert [r['PowershellScriptCommands'] for r in longer] == [['GET-PROCESS']]
    assert strict_results_with('run_long_after_the_session', max_run_delay_us=2 * HOUR) == []


def test_a_process_belongs_to_the_file_it_started_after(scenario_batch_alerts):
    # alice's process started before bob's session wrote script0.ps1 again, and ran cmdlets after it:
    # its InitiatingProcessCreationTime, not the cmdlets' time, gives them to alice's run.
    assert results(scenario_batch_alerts, 'sentinel', 'process_outlives_the_next_file') == []
    strict = results(scenario_batch_alerts, 'strict', 'process_outlives_the_next_file')
    assert sorted((r['Caller'], tuple(r['PowershellScriptCommands'])) for r in strict) == [
        ('alice@contoso.com', ('EXPORT-CSV', 'GET-PROCESS')), ('bob@contoso.com', ('GET-DATE',))]


# ----------------------------------------------------------------- 6: which events are cmdlets
def test_only_powershell_command_events_in_strict(scenario_batch_alerts):
    assert cmdlet_lists(scenario_batch_alerts, 'sentinel', 'events_that_are_not_powershell_commands') == [
        ('GET-PROCESS', 'INVOKE-EXPRESSION')]
    assert cmdlet_lists(scenario_batch_alerts, 'strict', 'events_that_are_not_powershell_commands') == [
        ('GET-PROCESS',)]


def test_empty_and_blank_commands_only_in_sentinel(scenario_batch_alerts):
    assert cmdlet_lists(scenario_batch_alerts, 'sentinel', 'empty_and_blank_commands') == [
        ('', '', ' \t\u3000', 'GET-PROCESS')]
    assert cmdlet_lists(scenario_batch_alerts, 'strict', 'empty_and_blank_commands') == [('GET-PROCESS',)]


# ----------------------------------------------------------------------- 7: the fingerprint
def test_file_size_is_part_of_the_strict_fingerprint(scenario_batch_alerts):
    assert results(scenario_batch_alerts, 'sentinel', 'sizes_on_two_vms') == []
    strict = results(scenario_batch_alerts, 'strict', 'sizes_on_two_vms')
    assert sorted(((r['PowershellFileSize'], r['ScriptFingerprintHash']) for r in strict), key=repr) == sorted([
        (100, fingerprint(['GET-PROCESS'], 100)), (999, fingerprint(['GET-PROCESS'], 999)),
        (None, fingerprint(['GET-PROCESS'], None))], key=repr)
    # The text hashed, written out: sha256('{"cmdlets":["GET-PROCESS"],"file_size":null}').
    assert fingerprint(['GET-PROCESS'], None) == hashlib.sha256(
        b'{"cmdlets":["GET-PROCESS"],"file_size":null}').hexdigest()


def test_the_size_is_that_of_the_file_as_executed(scenario_batch_alerts):
    # FileCreated 0 B, FileModified 1234 B, the process starts, FileModified 77 B: one run of 1234 B.
    assert results(scenario_batch_alerts, 'sentinel', 'file_rewritten_before_it_ran') == []
    [result] = results(scenario_batch_alerts, 'strict', 'file_rewritten_before_it_ran')
    assert (result['PowershellFileSize'], result['ScriptFingerprintHash']) == (1234, fingerprint(['GET-PROCESS'], 1234))


# -------------------------------------------------------------------- 8: what uniqueness counts
def test_one_session_with_two_file_events_of_its_script_is_one_run(scenario_batch_alerts):
    # Created at :10, modified at :30, cmdlets at :21 and :40: sentinel joins both file events (one
    # fingerprint twice); strict sees one run of the file, with both cmdlets.
    assert results(scenario_batch_alerts, 'sentinel', 'created_then_modified') == []
    [result] = results(scenario_batch_alerts, 'strict', 'created_then_modified')
    assert (result['PowershellScriptCommands'], result['Prevalence']) == (['GET-AFTER', 'GET-BETWEEN'], 100.0)
    window, rows = rows_read_by('created_then_modified', 'strict')
    assert len(window_run_command_data_of(rows, SEMANTICS['strict'], window)) == 1


def test_a_session_that_writes_its_script_twice_wrote_one_script():
    # The same two file events without an ActionType (both could be creations): one session's, so one
    # version of the file, one run.
    tenant = Tenant()
    tenant.session(1, 10, 'vm1')
    tenant.script(1, 10, 'vm1', 'script0.ps1', ['Get-Between', 'Get-After'], file_seconds=[10, 30],
                  cmdlet_seconds=[20, 21, 40], file_actions=['', ''])
    window = (parse_datetime_us(at(1, 0)), parse_datetime_us(at(2, 0)))
    [row] = window_run_command_data_of(tenant.typed(), SEMANTICS['strict'], window)
    assert row['PowershellScriptCommands'] == ['GET-AFTER', 'GET-BETWEEN']


def test_strict_counts_sessions_not_rows(scenario_batch_alerts):
    # vm1's session runs two scripts with one fingerprint (two runs); vm2's runs another script. Strict
    # counts (session, fingerprint) pairs: two, so both alert with Prevalence 1/2.
    sentinel = results(scenario_batch_alerts, 'sentinel', 'one_session_runs_two_like_scripts')
    assert [(r['VirtualMachineName'], round(r['Prevalence'], 6)) for r in sentinel] == [('vm2', 33.333333)]
    strict = results(scenario_batch_alerts, 'strict', 'one_session_runs_two_like_scripts')
    assert sorted((r['VirtualMachineName'], r['Prevalence']) for r in strict) == [('vm1', 50.0), ('vm2', 50.0)]


# ---------------------------------------------------------------------- 9: duplicate records
def test_copies_of_cmdlet_events_count_once_only_in_strict(scenario_batch_alerts):
    # sentinel: vm2's copied events change its list, so each fingerprint is unique; strict: one
    # fingerprint on two VMs, no alert.
    assert len(results(scenario_batch_alerts, 'sentinel', 'cmdlet_events_delivered_twice')) == 2
    assert results(scenario_batch_alerts, 'strict', 'cmdlet_events_delivered_twice') == []


def test_a_copied_file_event_counts_once_only_in_strict(scenario_batch_alerts):
    assert results(scenario_batch_alerts, 'sentinel', 'file_event_delivered_twice') == []
    assert cmdlet_lists(scenario_batch_alerts, 'strict', 'file_event_delivered_twice') == [('GET-ITEM',)]


def test_records_sharing_an_identity_with_other_content_are_all_kept(scenario_batch_alerts):
    # The Success row again with IP 9.9.9.9: both kept, so the session's max IP is 9.9.9.9 (dropping
    # one would keep 10.0.0.1, first in canonical order). The file event again with 900 B instead of
    # 500 B at the same instant: both kept; the later in canonical order is the file as executed.
    [result] = results(scenario_batch_alerts, 'strict', 'conflicting_activity_records')
    assert result['CallerIpAddress'] == '9.9.9.9'
    [result] = results(scenario_batch_alerts, 'strict', 'conflicting_file_records')
    assert result['PowershellFileSize'] == 900
    assert results(scenario_batch_alerts, 'sentinel', 'conflicting_file_records') == []


# -------------------------------------------------------------------------- 10: script writers
def test_script_writers_ignore_case_and_include_the_handler_only_in_strict(scenario_batch_alerts):
    assert results(scenario_batch_alerts, 'sentinel', 'script_writer_names') == []
    assert sorted(r['VirtualMachineName'] for r in results(scenario_batch_alerts, 'strict', 'script_writer_names')) == [
        'vm1', 'vm2']


# ------------------------------------------------------------------------- 11: session identity
def test_authorization_key_order_does_not_split_a_strict_session(scenario_batch_alerts):
    assert results(scenario_batch_alerts, 'sentinel', 'authorization_key_order') == []
    [result] = results(scenario_batch_alerts, 'strict', 'authorization_key_order')
    assert (result['StartTime'], result['EndTime']) == (at(DAYS['authorization_key_order'], 10),
                                                        at(DAYS['authorization_key_order'], 10, 0, 59))


# ------------------------------------------------------------------- 12: file event -> session
def test_a_file_event_belongs_to_the_session_that_started_last_before_it(scenario_batch_alerts):
    # bob's script was written while both sessions ran: it is bob's alone, so each fingerprint is one
    # session's; sentinel gives bob's script to alice too, and that fingerprint counts twice.
    sentinel = results(scenario_batch_alerts, 'sentinel', 'overlapping_sessions')
    assert [(r['Caller'], r['PowershellScriptCommands']) for r in sentinel] == [('alice@contoso.com', ['GET-PROCESS'])]
    strict = results(scenario_batch_alerts, 'strict', 'overlapping_sessions')
    assert sorted((r['Caller'], r['PowershellFileName'], tuple(r['PowershellScriptCommands'])) for r in strict) == [
        ('alice@contoso.com', 'script0.ps1', ('GET-PROCESS',)), ('bob@contoso.com', 'script1.ps1', ('GET-SERVICE',))]


# -------------------------------------------------------------------- 13: windows and sessions
def test_a_session_across_midnight_is_evaluated_in_the_window_it_starts(scenario_batch_alerts):
    # Sentinel splits it at midnight and loses it; strict alerts once, in the day it started. The
    # session at 00:30 the next day, in that window's look-ahead, alerts only on its own day.
    assert results(scenario_batch_alerts, 'sentinel', 'session_across_midnight') == []
    [result] = results(scenario_batch_alerts, 'strict', 'session_across_midnight')
    assert result['PowershellScriptCommands'] == ['GET-UPTIME', 'RESTART-COMPUTER']
    for name in NAMES:
        [next_day] = results(scenario_batch_alerts, name, 'session_across_midnight', day_offset=1)
        assert next_day['VirtualMachineName'] == 'vm2'


# ----------------------------------------------------------------------------- every scenario
def test_every_scenario_day_has_results_in_some_semantics(scenario_batch_alerts):
    assert sorted(set(scenario_batch_alerts['sentinel']) | set(scenario_batch_alerts['strict'])) == list(
        range(1, DAYS_USED + 1))


@pytest.mark.parametrize('name', NAMES)
def test_the_in_memory_evaluation_gives_the_batch_alerts_day_by_day(scenario_batch_alerts, name):
    # What the streaming evaluator computes for each daily window from the rows that window reads.
    by_window = collections.defaultdict(lambda: collections.defaultdict(list))
    for table, rows in semantics_scenarios().typed().items():
        for row in rows:
            for window in WINDOWS[name].windows_in_range(row['TimeGenerated']):
                by_window[window][table].append(row)
    for number in range(1, DAYS_USED + 1):
        start = parse_datetime_us(at(number, 0))
        window = (start, start + 24 * HOUR)
        in_memory = alerts_by_id(by_window[window], SEMANTICS[name], load_rule(), window)
        batch = {alert['SystemAlertId']: alert for alert in scenario_batch_alerts[name].get(number, [])}
        assert sorted(in_memory) == sorted(batch), number
        assert json.dumps(in_memory, sort_keys=True) == json.dumps(batch, sort_keys=True)


def test_options_choose_the_semantics_and_its_settings():
    strict = semantics_of(DetectionOptions([
        '--semantics', 'strict', '--strict_operations', 'Op/a, Op/b', '--strict_process_names', 'x.exe',
        '--strict_max_run_delay', '90s', '--strict_look_ahead', '2h', '--strict_scale_set_prefixes', 'SS1=web,ss1=w2']))
    assert strict == Semantics('strict', ('Op/a', 'Op/b'), ('x.exe',), 90_000_000, 2 * HOUR,
                               (('ss1', 'web'), ('ss1', 'w2')))
    assert semantics_of(DetectionOptions([])) == Semantics.named('sentinel')
    assert Semantics.named('sentinel').look_ahead_us == 0
    assert semantics_of(DetectionOptions(['--semantics', 'strict'])) == Semantics(
        'strict', Semantics.named('strict').operations, Semantics.named('strict').process_names, HOUR, 3 * HOUR, ())
    with pytest.raises(ValueError, match='look-ahead'):
        semantics_of(DetectionOptions(['--semantics', 'strict', '--strict_max_run_delay', '4h']))
    with pytest.raises(ValueError, match='name=prefix'):
        semantics_of(DetectionOptions(['--semantics', 'strict', '--strict_scale_set_prefixes', 'ss1']))


@pytest.mark.slow
def test_the_pipeline_reads_the_look_ahead_past_the_end_of_a_backfill(tmp_path):
    # A strict session from 23:59:30 on the last day of --start/--end to 00:00:30 after it: the read
    # step hands the window its rows after --end, which are in its look-ahead.
    tenant = Tenant()
    tenant.session(1, 23, 'vm1', minute=59, seconds=(30, 31, 90))
    tenant.script(1, 23, 'vm1', 'script0.ps1', ['Get-Uptime'], minute=59, file_seconds=[40], cmdlet_seconds=[50, 65])
    inputs = tenant.write(tmp_path)
    window = ['--start', '2024-05-01', '--end', '2024-05-02']
    [alert] = run_alerts(inputs + window + ['--semantics', 'strict'], tmp_path / 'strict')
    assert (alert['QueryPeriodStart'], alert['QueryResult']['PowershellScriptCommands']) == (
        '2024-05-01T00:00:00.000000Z', ['GET-UPTIME'])
    assert run_alerts(inputs + window, tmp_path / 'sentinel') == []


@pytest.mark.parametrize('name', NAMES)
def test_sessions_sharing_an_authorization_text_get_the_rows_each_would_get_alone(name):
    from transforms.detect.sessions import (  # pylint: disable=import-outside-toplevel
        SessionSummary, succeeded_sessions, to_session)
    semantics = Semantics.named(name)
    vm = '/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-%d'
    texts = [json.dumps({'scope': vm % 1}), json.dumps({'scope': vm % 2}), json.dumps({'scope': {'id': vm % 3}}),
             'not json', json.dumps({'action': 'x'})]
    summaries = {('c-%d' % i, texts[i % len(texts)], 'a@b'): SessionSummary(i, i + 5, '10.0.0.%d' % i, True)
                 for i in range(20)}
    sessions = succeeded_sessions(summaries, semantics)
    assert sessions == [to_session(key, summary, semantics) for key, summary in summaries.items()]
    assert {session['VirtualMachineName'] for session in sessions} >= {'vm-1', 'vm-2'}
    # a scope that is a JSON object is every session's own
    objects = [session['Scope'] for session in sessions if isinstance(session['Scope'], dict)]
    assert len(objects) == 4 and len({id(scope) for scope in objects}) == 4
