"""Sentinel and strict semantics side by side: the same rows, and every documented difference.

Each scenario lives on its own day (its own daily window), so that the scenarios do not interact;
both semantics run once over all of them (module fixture) and each test reads its day's alerts.
"""

import pytest

from scenario import SCOPE, Tenant, run_alerts


def scenarios():
    t = Tenant()
    # 1. A managed Run Command (runCommands/write) on a VM: only strict watches it, and strict
    #    takes the VM name from the segment after virtualMachines, not the last one.
    t.session(1, 10, 'vm1', op='Microsoft.Compute/virtualMachines/runCommands/write',
              scope=SCOPE + 'vm1/runCommands/rc1')
    t.script(1, 10, 'vm1.contoso.local', 'script0.ps1', ['Get-Process'])
    # 2. ARM name and Defender name differ in case.
    t.session(2, 10, 'WebProd01')
    t.script(2, 10, 'webprod01.contoso.local', 'script0.ps1', ['Get-Service'])
    # 3. The same script name on two VMs: sentinel pools their cmdlets, strict keeps them apart.
    t.session(3, 10, 'vm1')
    t.script(3, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.session(3, 11, 'vm2')
    t.script(3, 11, 'vm2', 'script0.ps1', ['Get-Service'])
    # 4. Events that are not PowerShell commands, and an empty Command.
    t.session(4, 10, 'vm1')
    t.script(4, 10, 'vm1', 'script0.ps1', ['Get-Process'], extra_events=[
        {'TimeGenerated': '2024-05-04T10:00:40Z', 'ActionType': 'ProcessCreated', 'AdditionalFields': {}}])
    # 5. Same cmdlets, different script sizes on two VMs: sentinel sees one fingerprint twice.
    t.session(5, 10, 'vm1')
    t.script(5, 10, 'vm1', 'script0.ps1', ['Get-Process'], size=100)
    t.session(5, 11, 'vm2')
    t.script(5, 11, 'vm2', 'script1.ps1', ['Get-Process'], size=999)
    # 6. One session whose script produced two file events: sentinel counts two rows.
    t.session(6, 10, 'vm1')
    t.script(6, 10, 'vm1', 'script0.ps1', ['Get-Process'], file_events=2)
    # 7. The same script on two VMs, one VM's events delivered twice.
    t.session(7, 10, 'vm1')
    t.script(7, 10, 'vm1', 'script0.ps1', ['Get-Process', 'Stop-Service'])
    t.session(7, 11, 'vm2')
    t.script(7, 11, 'vm2', 'script1.ps1', ['Get-Process', 'Stop-Service'], duplicate_events=True)
    # 8. Cmdlets of the same script name run long after the session (another run on the VM).
    t.session(8, 10, 'vm1')
    t.script(8, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.script(8, 15, 'vm1', 'script0.ps1', ['Remove-Item'], file_events=0)
    return t


@pytest.fixture(scope='module')
def alerts_by_semantics(tmp_path_factory):
    base = tmp_path_factory.mktemp('semantics')
    inputs = scenarios().write(base)
    found = {}
    for semantics in ('sentinel', 'strict'):
        by_day = {}
        for alert in run_alerts(inputs + ['--semantics', semantics], base / semantics):
            by_day.setdefault(int(alert['QueryPeriodStart'][8:10]), []).append(alert['QueryResult'])
        found[semantics] = by_day
    return found


def day(found, semantics, number):
    return found[semantics].get(number, [])


def test_managed_run_commands_only_in_strict(alerts_by_semantics):
    assert day(alerts_by_semantics, 'sentinel', 1) == []
    [result] = day(alerts_by_semantics, 'strict', 1)
    assert result['VirtualMachineName'] == 'vm1'


def test_host_names_match_ignoring_case_only_in_strict(alerts_by_semantics):
    assert day(alerts_by_semantics, 'sentinel', 2) == []
    [result] = day(alerts_by_semantics, 'strict', 2)
    assert result['PowershellScriptCommands'] == ['GET-SERVICE']


def test_cmdlets_pooled_across_vms_only_in_sentinel(alerts_by_semantics):
    sentinel = day(alerts_by_semantics, 'sentinel', 3)
    strict = day(alerts_by_semantics, 'strict', 3)
    # sentinel: both sessions join the one pooled list, which then occurs twice: no alert.
    assert sentinel == []
    assert sorted((r['VirtualMachineName'], tuple(r['PowershellScriptCommands'])) for r in strict) == [
        ('vm1', ('GET-PROCESS',)), ('vm2', ('GET-SERVICE',))]


def test_only_non_empty_powershell_commands_in_strict(alerts_by_semantics):
    [sentinel] = day(alerts_by_semantics, 'sentinel', 4)
    [strict] = day(alerts_by_semantics, 'strict', 4)
    assert sentinel['PowershellScriptCommands'] == ['', 'GET-PROCESS']
    assert strict['PowershellScriptCommands'] == ['GET-PROCESS']


def test_file_size_is_part_of_the_strict_fingerprint(alerts_by_semantics):
    assert day(alerts_by_semantics, 'sentinel', 5) == []
    assert sorted(r['PowershellFileSize'] for r in day(alerts_by_semantics, 'strict', 5)) == [100, 999]


def test_strict_counts_sessions_not_rows(alerts_by_semantics):
    assert day(alerts_by_semantics, 'sentinel', 6) == []
    [result] = day(alerts_by_semantics, 'strict', 6)
    assert result['Prevalence'] == 100.0


def test_duplicate_records_dropped_only_in_strict(alerts_by_semantics):
    # sentinel: the duplicated events change vm2's list, so each fingerprint is unique.
    assert len(day(alerts_by_semantics, 'sentinel', 7)) == 2
    assert day(alerts_by_semantics, 'strict', 7) == []


def test_strict_counts_only_cmdlets_of_the_session(alerts_by_semantics):
    sentinel = day(alerts_by_semantics, 'sentinel', 8)
    [strict] = day(alerts_by_semantics, 'strict', 8)
    assert strict['PowershellScriptCommands'] == ['GET-PROCESS']
    assert ['GET-PROCESS', 'REMOVE-ITEM'] in [r['PowershellScriptCommands'] for r in sentinel]
