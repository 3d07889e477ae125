"""A tiny hand-built tenant for tests: Run Command sessions, the script files and their cmdlets."""

import json

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER

OP = 'Microsoft.Compute/virtualMachines/runCommand/action'
SCOPE = '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/'


class Tenant:
    def __init__(self):
        self.activity, self.files, self.events = [], [], []
        self._ids = 0

    def _id(self):
        self._ids += 1
        return self._ids

    def session(self, day, hour, vm, op=OP, scope=None, correlation=None):
        correlation = correlation or 'corr-%d' % self._id()
        authorization = json.dumps({'action': op, 'scope': scope or SCOPE + vm})
        for second, status in ((0, 'Start'), (1, 'Accept'), (59, 'Success')):
            self.activity.append({
                'TimeGenerated': '2024-05-%02dT%02d:00:%02dZ' % (day, hour, second), 'OperationNameValue': op,
                'Authorization': authorization, 'CorrelationId': correlation, 'Caller': 'alice@contoso.com',
                'CallerIpAddress': '10.0.0.1', 'ActivityStatusValue': status, 'EventDataId': 'ev-%d' % self._id()})

    def script(self, day, hour, device, name, cmdlets, size=1000, minute_offset=0, file_events=1,
               duplicate_events=False, extra_events=()):
        for n in range(file_events):
            self.files.append({
                'TimeGenerated': '2024-05-%02dT%02d:00:%02dZ' % (day, hour, 10 + n), 'DeviceName': device,
                'DeviceId': 'dev-' + device, 'ReportId': self._id(),
                'InitiatingProcessFileName': 'RunCommandExtension.exe', 'FileName': name, 'FileSize': size})
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
