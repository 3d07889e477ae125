"""A tiny hand-built tenant for tests: Run Command sessions, the script files and their cmdlets."""

import json

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from transforms.read.ingest import typed_row
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS

OP = 'Microsoft.Compute/virtualMachines/runCommand/action'
SCOPE = '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/'


class Tenant:
    def __init__(self):
        self.activity, self.files, self.events = [], [], []
        self._ids = 0

    def _id(self):
        self._ids += 1
        return self._ids

    def session(self, day, hour, vm, op=OP, scope=None, correlation=None, redelivered_ip=None):
        """Three AzureActivity rows; with `redelivered_ip`, the last one delivered again with that IP."""
        correlation = correlation or 'corr-%d' % self._id()
        authorization = json.dumps({'action': op, 'scope': scope or SCOPE + vm})
        for second, status in ((0, 'Start'), (1, 'Accept'), (59, 'Success')):
            self.activity.append({
                'TimeGenerated': '2024-05-%02dT%02d:00:%02dZ' % (day, hour, second), 'OperationNameValue': op,
                'Authorization': authorization, 'CorrelationId': correlation, 'Caller': 'alice@contoso.com',
                'CallerIpAddress': '10.0.0.1', 'ActivityStatusValue': status, 'EventDataId': 'ev-%d' % self._id()})
        if redelivered_ip:
            self.activity.append(dict(self.activity[-1], CallerIpAddress=redelivered_ip))

    def script(self, day, hour, device, name, cmdlets, size=1000, minute_offset=0, file_events=1,
               duplicate_events=False, extra_events=(), process='RunCommandExtension.exe', redelivered_size=None):
        """The script's file events, its command line's events (the script, then each cmdlet); with
        `redelivered_size`, the last file event delivered again with that FileSize."""
        for n in range(file_events):
            time = '2024-05-%02dT%02d:00:%02dZ' % (day, hour, 10 + n)
            self.files.append({
                'TimeGenerated': time, 'Timestamp': time, 'DeviceName': device, 'DeviceId': 'dev-' + device,
                'ReportId': self._id(), 'InitiatingProcessFileName': process, 'FileName': name, 'FileSize': size})
        if redelivered_size is not None:
            self.files.append(dict(self.files[-1], FileSize=redelivered_size))
        line = 'powershell -ExecutionPolicy Unrestricted -File ' + name
        commands = [name] + list(cmdlets)
        for index, command in enumerate(commands):
            event = {'TimeGenerated': '2024-05-%02dT%02d:%02d:%02dZ' % (day, hour, minute_offset, 20 + index),
                     'Timestamp': '2024-05-%02dT%02d:%02d:%02dZ' % (day, hour, minute_offset, 20 + index),
                     'DeviceName': device, 'DeviceId': 'dev-' + device, 'ReportId': self._id(),
                     'ActionType': 'PowerShellCommand', 'InitiatingProcessCommandLine': line,
                     'AdditionalFields': {'Command': command}}
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


def semantics_scenarios():
    """Every documented difference of the two semantics, each on its own day of May 2024 (its own daily
    window), so that they do not interact (README, "Two semantics"; tests/test_semantics.py)."""
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
    # 4. Events that are not PowerShell commands (one with a Command), and an empty Command.
    t.session(4, 10, 'vm1')
    t.script(4, 10, 'vm1', 'script0.ps1', ['Get-Process'], extra_events=[
        {'TimeGenerated': '2024-05-04T10:00:40Z', 'ActionType': 'ProcessCreated', 'AdditionalFields': {}},
        {'TimeGenerated': '2024-05-04T10:00:41Z', 'ActionType': 'AmsiScriptContent',
         'AdditionalFields': {'Command': 'Invoke-Expression'}}])
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
    # 9. A script writer spelled in lower case, and the managed Run Command handler: strict only.
    t.session(9, 10, 'vm1')
    t.script(9, 10, 'vm1', 'script0.ps1', ['Get-Date'], process='runcommandextension.exe')
    t.session(9, 11, 'vm2')
    t.script(9, 11, 'vm2', 'script1.ps1', ['Get-Host'], process='RunCommandHandlerWindows.exe')
    # 10. An AzureActivity event delivered twice, the copies differing (same EventDataId): not copies of
    #     one another, so both count, in either semantics (max IP 9.9.9.9).
    t.session(10, 10, 'vm1', redelivered_ip='9.9.9.9')
    t.script(10, 10, 'vm1', 'script0.ps1', ['Get-Acl'])
    # 11. A file event delivered twice with another FileSize: sentinel joins both (one fingerprint,
    #     twice: no alert); strict keeps both too, and fingerprints each with its size.
    t.session(11, 10, 'vm1')
    t.script(11, 10, 'vm1', 'script0.ps1', ['Get-Item'], size=500, redelivered_size=900)
    return t
