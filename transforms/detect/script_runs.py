"""RunCommandData: each session's script file joined with the cmdlets that script ran.

KQL (sentinel): an inner join of the session/file rows with the per-script cmdlet lists on
``$left.FileName == $right.PowershellFileName`` only, so every session that wrote ``script3.ps1``
joins every ``script3.ps1`` list of the window, from any VM or command line.

Strict: the cmdlets are joined by VM and script file name, and only the events between the script
file's creation and the session's end (plus a tolerance) count.
"""

import apache_beam as beam

from transforms.detect import fingerprints
from transforms.detect.file_joins import vm_join_key

RUNS = 'runs'
SCRIPTS = 'scripts'


def run_command_data(run, script, cmdlets, fingerprint):
    return {
        'StartTime': run['StartTime'],
        'EndTime': run['EndTime'],
        'PowershellFileCreatedTimestamp': run['PowershellFileCreatedTimestamp'],
        'PowershellExecStartTime': script['PowershellExecStartTime'],
        'PowershellExecEnd': script['PowershellExecEnd'],
        'PowershellFileName': script['PowershellFileName'],
        'PowershellScriptCommands': cmdlets,
        'Caller': run['Caller'],
        'CallerIpAddress': run['CallerIpAddress'],
        'InitiatingProcessCommandLine': script['InitiatingProcessCommandLine'],
        'PowershellFileSize': run['FileSize'],
        'VirtualMachineName': run['VirtualMachineName'],
        'Scope': run['Scope'],
        'CorrelationId': run['CorrelationId'],
        'ScriptFingerprintHash': fingerprint,
    }


def join_on_file_name(_, grouped):
    scripts = list(grouped[SCRIPTS])
    if not scripts:
        return
    for run in grouped[RUNS]:
        for script in scripts:
            yield run_command_data(run, script, script['PowershellScriptCommands'], script['ScriptFingerprintHash'])


def join_on_vm_and_time(_, grouped, tolerance_us):
    events = list(grouped[SCRIPTS])
    if not events:
        return
    for run in grouped[RUNS]:
        low, high = run['PowershellFileCreatedTimestamp'], run['EndTime'] + tolerance_us
        ran = [(time, cmdlet) for time, cmdlet in events if low <= time <= high]
        if not ran:
            continue
        cmdlets = sorted(cmdlet for _, cmdlet in ran)
        script = {
            'PowershellFileName': run['FileName'],
            'InitiatingProcessCommandLine': '',
            'PowershellExecStartTime': min(time for time, _ in ran),
            'PowershellExecEnd': max(time for time, _ in ran),
        }
        yield run_command_data(run, script, cmdlets, fingerprints.strict_fingerprint(cmdlets, run['FileSize']))


class JoinScriptCmdlets(beam.PTransform):
    """{'runs': (window, session/file row), 'scripts': keyed cmdlet lists or events} -> (window,
    RunCommandData row)."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, inputs):
        semantics = self._semantics
        if semantics.strict:
            runs = inputs[RUNS] | 'KeyRunsByVmAndFile' >> beam.MapTuple(
                lambda window, r: ((window, vm_join_key(r['VirtualMachineName'], semantics), r['FileName']), r))
            tolerance_us = semantics.exec_tolerance_us
            joiner = beam.FlatMapTuple(lambda key, grouped: (
                (key[0], row) for row in join_on_vm_and_time(key[1:], grouped, tolerance_us)))
        else:
            runs = inputs[RUNS] | 'KeyRunsByFileName' >> beam.MapTuple(lambda window, r: ((window, r['FileName']), r))
            joiner = beam.FlatMapTuple(lambda key, grouped: ((key[0], row) for row in join_on_file_name(key[1], grouped)))
        return (
            {RUNS: runs, SCRIPTS: inputs[SCRIPTS]}
            | 'CoGroupByScript' >> beam.CoGroupByKey()
            | 'JoinCmdlets' >> joiner)
