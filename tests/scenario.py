"""A tiny hand-built tenant for tests: Run Command sessions, the script files and their cmdlets."""

import datetime
import json

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from transforms.detect.semantics import Semantics
from transforms.detect.windows import QueryWindows
from transforms.read.ingest import typed_row
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS

OP = 'Microsoft.Compute/virtualMachines/runCommand/action'
MANAGED_OP = 'Microsoft.Compute/virtualMachines/runCommands/write'
SCALE_SET_OP = 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action'
SCALE_SET_MANAGED_OP = 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write'
ARC_OP = 'Microsoft.HybridCompute/machines/runCommands/write'
RG = '/subscriptions/s1/resourceGroups/rg/providers/'
SCOPE = RG + 'Microsoft.Compute/virtualMachines/'
SCALE_SET_SCOPE = RG + 'Microsoft.Compute/virtualMachineScaleSets/'
ARC_SCOPE = RG + 'Microsoft.HybridCompute/machines/'
FIRST_DAY = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)


def at(day, hour, minute=0, second=0):
    """ISO text of day `day` (1 = 2024-05-01) at hour:minute plus `second` seconds (any number)."""
    moment = FIRST_DAY + datetime.timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def day_of(text):
    """The day number (1 = 2024-05-01) of an ISO date or datetime text."""
    return (datetime.date.fromisoformat(text[:10]) - FIRST_DAY.date()).days + 1


class Tenant:
    def __init__(self):
        self.activity, self.files, self.events = [], [], []
        self._ids = 0

    def _id(self):
        self._ids += 1
        return self._ids

    def session(self, day, hour, vm, op=OP, scope=None, correlation=None, redelivered_ip=None,
                caller='alice@contoso.com', minute=0, seconds=(0, 1, 59), authorizations=None,
                statuses=('Start', 'Accept', 'Success'), copied=False):
        """Three AzureActivity rows, `seconds` after hour:minute; with `redelivered_ip`, the last one
        delivered again with that IP (same EventDataId); with `copied`, delivered again as it is."""
        correlation = correlation or 'corr-%d' % self._id()
        authorization = json.dumps({'action': op, 'scope': scope or SCOPE + vm})
        for second, status, auth in zip(seconds, statuses, authorizations or [authorization] * 3):
            self.activity.append({
                'TimeGenerated': at(day, hour, minute, second), 'OperationNameValue': op,
                'Authorization': auth, 'CorrelationId': correlation, 'Caller': caller,
                'CallerIpAddress': '10.0.0.1', 'ActivityStatusValue': status, 'EventDataId': 'ev-%d' % self._id()})
        if redelivered_ip:
            self.activity.append(dict(self.activity[-1], CallerIpAddress=redelivered_ip))
        if copied:
            self.activity.append(dict(self.activity[-1]))
        return correlation

    def script(self, day, hour, device, name, cmdlets, size=1000, minute_offset=0, file_events=1,
               duplicate_events=False, extra_events=(), process='RunCommandExtension.exe', redelivered_size=None,
               minute=0, file_seconds=None, file_actions=None, sizes=None, cmdlet_second=20,
               cmdlet_seconds=None, process_created=None, copied_file=False):
        """The script's file events (at `file_seconds` after hour:minute, default 10, 11, ...; the first a
        FileCreated, the others FileModified unless `file_actions` says), then its command line's events
        (the script, then each cmdlet) from `minute_offset` minutes and `cmdlet_second` seconds after
        hour:minute, a second apart (or at `cmdlet_seconds` after hour:minute, one for each); with
        `process_created` (seconds after hour:minute) they carry their process's InitiatingProcessId and
        InitiatingProcessCreationTime. `redelivered_size`: the last file event delivered again with
        that FileSize (same identity); `copied_file`: delivered again as it is."""
        file_seconds = file_seconds or [10 + n for n in range(file_events)]
        for n, second in enumerate(file_seconds):
            time = at(day, hour, minute, second)
            self.files.append({
                'TimeGenerated': time, 'Timestamp': time, 'DeviceName': device, 'DeviceId': 'dev-' + device,
                'ReportId': self._id(), 'InitiatingProcessFileName': process, 'FileName': name,
                'FileSize': sizes[n] if sizes else size,
                'ActionType': file_actions[n] if file_actions else ('FileCreated' if n == 0 else 'FileModified')})
        if redelivered_size is not None:
            self.files.append(dict(self.files[-1], FileSize=redelivered_size))
        if copied_file:
            self.files.append(dict(self.files[-1]))
        line = 'powershell -ExecutionPolicy Unrestricted -File ' + name
        process_fields = {}
        if process_created is not None:
            process_fields = {'InitiatingProcessId': 4000 + self._id(),
                              'InitiatingProcessCreationTime': at(day, hour, minute, process_created)}
        commands = [name] + list(cmdlets)
        for index, command in enumerate(commands):
            second = cmdlet_seconds[index] if cmdlet_seconds else minute_offset * 60 + cmdlet_second + index
            time = at(day, hour, minute, second)
            event = dict({'TimeGenerated': time, 'Timestamp': time, 'DeviceName': device, 'DeviceId': 'dev-' + device,
                          'ReportId': self._id(), 'ActionType': 'PowerShellCommand',
                          'InitiatingProcessCommandLine': line, 'AdditionalFields': {'Command': command}},
                         **process_fields)
            self.events.append(event)
            if duplicate_events and index > 0:
                self.events.append(dict(event))
        for event in extra_events:
            self.events.append(dict({'DeviceName': device, 'InitiatingProcessCommandLine': line}, **event))

    def typed(self):
        """{table: typed rows}, as the read step gives them."""
        return {table: [typed_row(table, row) for row in rows] for table, rows in (
            (AZURE_ACTIVITY, self.activity), (DEVICE_FILE_EVENTS, self.files), (DEVICE_EVENTS, self.events))}

    def write(self, directory):
        """Writes the three tables as JSON lines; returns the pipeline's input arguments."""
        argv = []
        for table, rows in (('AzureActivity', self.activity), ('DeviceFileEvents', self.files),
                            ('DeviceEvents', self.events)):
            path = directory / (table + '.jsonl')
            path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
            argv.append('--%s=%s' % (rare_runcommand.TABLE_OPTIONS[table], path))
        return argv


def run_alerts(argv, output_dir):
    """Runs the pipeline in process; returns its alerts."""
    rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(output_dir)] + list(argv))
    return list(rare_runcommand.read_json_lines_output(str(output_dir), 'alerts'))


# ---------------------------------------------------------------- the semantics scenarios
# Each scenario is a function of (tenant, day) that writes its rows on that day (its own daily window),
# so that the scenarios do not interact. The README's table of differences lists, row by row, the
# tests in tests/test_semantics.py that read them.
SCENARIOS = []


def scenario(build):
    SCENARIOS.append(build)
    return build


@scenario
def managed_vm(t, d):
    # Row 1: a managed Run Command (runCommands/write) on a VM: only strict watches it; its scope ends
    # with the Run Command's own name.
    t.session(d, 10, 'vm1', op=MANAGED_OP, scope=SCOPE + 'vm1/runCommands/rc1')
    t.script(d, 10, 'vm1.contoso.local', 'script0.ps1', ['Get-Process'])


@scenario
def scale_set_vm_action(t, d):
    # Row 1: the action form on a uniform scale-set VM (instance 3 of ss1, computer name ss1000003).
    t.session(d, 10, 'ss1', op=SCALE_SET_OP, scope=SCALE_SET_SCOPE + 'ss1/virtualMachines/3')
    t.script(d, 10, 'ss1000003.contoso.local', 'script0.ps1', ['Get-Volume'])


@scenario
def scale_set_vm_managed(t, d):
    # Row 1: the managed form on a uniform scale-set VM (instance 10 of ss1: ss100000A).
    t.session(d, 10, 'ss1', op=SCALE_SET_MANAGED_OP, scope=SCALE_SET_SCOPE + 'ss1/virtualMachines/10/runCommands/rc1')
    t.script(d, 10, 'SS100000A', 'script0.ps1', ['Get-Disk'])


@scenario
def arc_machine(t, d):
    # Row 1: the managed form on an Azure Arc machine.
    t.session(d, 10, 'arc1', op=ARC_OP, scope=ARC_SCOPE + 'arc1/runCommands/rc1')
    t.script(d, 10, 'arc1.contoso.local', 'script0.ps1', ['Get-Service'])


@scenario
def vm_named_machines(t, d):
    # Row 2: a VM named "machines" and an Arc machine named "virtualMachines": the name is the segment
    # after the resource type, not the last segment that looks like a type.
    t.session(d, 10, 'machines', op=MANAGED_OP, scope=SCOPE + 'machines/runCommands/rc1')
    t.script(d, 10, 'machines.contoso.local', 'script0.ps1', ['Get-Acl'])
    t.session(d, 11, 'virtualMachines', op=ARC_OP, scope=ARC_SCOPE + 'virtualMachines/runCommands/rc2')
    t.script(d, 11, 'virtualMachines', 'script1.ps1', ['Set-Acl'])


@scenario
def trailing_slash(t, d):
    # Row 2: the action form whose scope ends with "/": sentinel's VM name is "" (no device has it).
    t.session(d, 10, 'vm1', scope=SCOPE + 'vm1/')
    t.script(d, 10, 'vm1.contoso.local', 'script0.ps1', ['Get-Date'])


@scenario
def host_name_case(t, d):
    # Row 3: ARM name and Defender name differ in case.
    t.session(d, 10, 'WebProd01')
    t.script(d, 10, 'WEBPROD01.contoso.local', 'script0.ps1', ['Get-Service'])


@scenario
def scale_set_prefix(t, d):
    # Row 3: scale set web-ss whose computer name prefix is "web" (--strict_scale_set_prefixes
    # web-ss=web): instance 35 is web00000Z. A device named after the default prefix is not it.
    t.session(d, 10, 'web-ss', op=SCALE_SET_OP, scope=SCALE_SET_SCOPE + 'web-ss/virtualMachines/35')
    t.script(d, 10, 'web00000Z.contoso.local', 'script0.ps1', ['Get-WebSite'])
    t.session(d, 11, 'web-ss', op=SCALE_SET_OP, scope=SCALE_SET_SCOPE + 'web-ss/virtualMachines/36')
    t.script(d, 11, 'web-ss000010', 'script1.ps1', ['Stop-WebSite'])


@scenario
def same_script_name_on_two_vms(t, d):
    # Row 4: the same script name run at the same moment on two VMs, with other cmdlets.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.session(d, 10, 'vm2')
    t.script(d, 10, 'vm2', 'script0.ps1', ['Get-Service'])


@scenario
def script_that_sleeps(t, d):
    # Row 5: a script that sleeps six minutes before its first cmdlet (no process creation time
    # recorded: the events' own times place them).
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process', 'Stop-Process'], minute_offset=6)


@scenario
def script_name_reused_by_another_caller(t, d):
    # Row 5: script0.ps1 written again on the VM three minutes later by another caller's session.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.session(d, 10, 'vm1', minute=3, caller='mallory@contoso.com')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Invoke-Mimikatz'], minute=3)


@scenario
def cmdlets_before_the_file(t, d):
    # Row 5: a PowerShell process ran script0.ps1 on the VM before this session wrote the file.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.script(d, 9, 'vm1', 'script0.ps1', ['Remove-Item'], file_events=0)


@scenario
def run_long_after_the_session(t, d):
    # Row 5: the script's process starts two hours after its session ended (more than the 1h default).
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'], minute_offset=121, process_created=121 * 60 + 15)


@scenario
def process_outlives_the_next_file(t, d):
    # Row 5: alice's process (started 10:00:12) still runs cmdlets after bob's session wrote script0.ps1
    # again at 10:01:10: its process start, not the event time, places them.
    t.session(d, 10, 'vm1', seconds=(0, 1, 50))
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process', 'Export-Csv'], cmdlet_second=75, process_created=12)
    t.session(d, 10, 'vm1', minute=1, caller='bob@contoso.com', seconds=(5, 6, 59))
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Date'], minute=1, cmdlet_second=40, process_created=30)


@scenario
def events_that_are_not_powershell_commands(t, d):
    # Row 6: an event of another ActionType that has a Command.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'], extra_events=[
        {'TimeGenerated': at(d, 10, 0, 41), 'ActionType': 'AmsiScriptContent',
         'AdditionalFields': {'Command': 'Invoke-Expression'}}])


@scenario
def empty_and_blank_commands(t, d):
    # Row 6: PowerShellCommand events whose Command is missing, empty or only white space.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process', '', ' \t\u3000'], extra_events=[
        {'TimeGenerated': at(d, 10, 0, 40), 'ActionType': 'PowerShellCommand', 'AdditionalFields': {}}])


@scenario
def sizes_on_two_vms(t, d):
    # Row 7: the same cmdlets, other script sizes on two VMs; vm3's size unknown.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'], size=100)
    t.session(d, 11, 'vm2')
    t.script(d, 11, 'vm2', 'script1.ps1', ['Get-Process'], size=999)
    t.session(d, 12, 'vm3')
    t.script(d, 12, 'vm3', 'script2.ps1', ['Get-Process'], size=None)


@scenario
def file_rewritten_before_it_ran(t, d):
    # Row 7: FileCreated with size 0, FileModified with 1234 before the process started, FileModified
    # with 77 after it started.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'], file_seconds=[10, 12, 30], sizes=[0, 1234, 77],
             process_created=15)


@scenario
def created_then_modified(t, d):
    # Row 8 (bug 2): one session's script created at :10 and modified at :30; its cmdlets at :20.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Between', 'Get-After'], file_seconds=[10, 30],
             cmdlet_seconds=[20, 21, 40])


@scenario
def one_session_runs_two_like_scripts(t, d):
    # Row 8: a session writes and runs two scripts with the same cmdlets and size (two runs, one
    # fingerprint); another session runs another script once. Strict counts two (session, fingerprint)
    # pairs.
    t.session(d, 10, 'vm1', seconds=(0, 1, 100))
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.script(d, 10, 'vm1', 'script1.ps1', ['Get-Process'], cmdlet_second=70, file_seconds=[60])
    t.session(d, 11, 'vm2')
    t.script(d, 11, 'vm2', 'script2.ps1', ['Get-Service'])


@scenario
def cmdlet_events_delivered_twice(t, d):
    # Row 9: the same script on two VMs, one VM's cmdlet events delivered twice (exact copies).
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process', 'Stop-Service'])
    t.session(d, 11, 'vm2')
    t.script(d, 11, 'vm2', 'script1.ps1', ['Get-Process', 'Stop-Service'], duplicate_events=True)


@scenario
def file_event_delivered_twice(t, d):
    # Row 9: a file event delivered twice as it is.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Item'], copied_file=True)


@scenario
def conflicting_activity_records(t, d):
    # Row 9: an AzureActivity record delivered again with another IP (same EventDataId): not a copy.
    t.session(d, 10, 'vm1', redelivered_ip='9.9.9.9')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Acl'])


@scenario
def conflicting_file_records(t, d):
    # Row 9: a file event delivered again with another FileSize (same DeviceId, ReportId, Timestamp).
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Item'], size=500, redelivered_size=900)


@scenario
def script_writer_names(t, d):
    # Row 10: a script writer spelled in lower case, and the managed Run Command handler.
    t.session(d, 10, 'vm1')
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Date'], process='runcommandextension.exe')
    t.session(d, 11, 'vm2')
    t.script(d, 11, 'vm2', 'script1.ps1', ['Get-Host'], process='RunCommandHandlerWindows.exe')


@scenario
def authorization_key_order(t, d):
    # Row 11: the Success row's Authorization has its keys in another order.
    scope = SCOPE + 'vm1'
    first = json.dumps({'action': OP, 'scope': scope})
    other_order = json.dumps({'scope': scope, 'action': OP})
    t.session(d, 10, 'vm1', authorizations=[first, first, other_order])
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Acl'])


@scenario
def overlapping_sessions(t, d):
    # Row 12: alice's session (10:00:00-10:02:00) and bob's (10:00:30-10:01:40) on one VM; alice's
    # script written at 10:00:10, bob's at 10:00:40 (inside both sessions).
    t.session(d, 10, 'vm1', seconds=(0, 1, 120))
    t.script(d, 10, 'vm1', 'script0.ps1', ['Get-Process'])
    t.session(d, 10, 'vm1', caller='bob@contoso.com', seconds=(30, 31, 100))
    t.script(d, 10, 'vm1', 'script1.ps1', ['Get-Service'], file_seconds=[40], cmdlet_second=50)


@scenario
def session_across_midnight(t, d):
    # Row 13: a session from 23:59:30 to 00:00:30 the next day, its script written and run before
    # midnight and after; then a session at 00:30 the next day (in the previous window's look-ahead).
    t.session(d, 23, 'vm1', minute=59, seconds=(30, 31, 90))
    t.script(d, 23, 'vm1', 'script0.ps1', ['Get-Uptime', 'Restart-Computer'], minute=59, file_seconds=[40],
             cmdlet_seconds=[50, 55, 65])
    t.session(d + 1, 0, 'vm2', minute=30)
    t.script(d + 1, 0, 'vm2', 'script1.ps1', ['Get-Uptime'], minute=30)


DAYS = {build.__name__: number for number, build in enumerate(SCENARIOS, start=1)}
DAY_US = 86_400_000_000
# The semantics the scenarios are evaluated in: strict with web-ss's computer name prefix given
# (--strict_scale_set_prefixes web-ss=web), and each semantics' daily windows (strict's read a margin).
SEMANTICS = {'sentinel': Semantics.named('sentinel'),
             'strict': Semantics.named('strict', scale_set_prefixes=(('web-ss', 'web'),))}
WINDOWS = {name: QueryWindows(DAY_US, DAY_US, margin_us=semantics.look_ahead_us)
           for name, semantics in SEMANTICS.items()}
DAYS_USED = len(SCENARIOS) + 1   # the last scenario spills into the day after it


def semantics_scenarios():
    """Every documented difference of the two semantics, each on its own day from 2024-05-01 (its own
    daily window), so that they do not interact (README, "Two semantics"; tests/test_semantics.py)."""
    t = Tenant()
    for build in SCENARIOS:
        build(t, DAYS[build.__name__])
    return t
