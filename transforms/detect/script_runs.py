"""RunCommandData: each session's script file joined with the cmdlets that script ran.

KQL (sentinel): an inner join of the session/file rows with the per-script cmdlet lists on
``$left.FileName == $right.PowershellFileName`` only, so every session that wrote ``script3.ps1``
joins every ``script3.ps1`` list of the window, from any VM or command line.

Strict: the cmdlets are joined by VM and script file name, and only the events between the script
file's creation and the session's end (plus a tolerance) count.
"""

import apache_beam as beam

from transforms.detect import fingerprints, kql
from transforms.detect.in_memory import co_group_by_key
from transforms.detect.windows import key_in_window

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


def run_key(run, semantics):
    """What a session/file row joins the cmdlets on: sentinel the file name; strict (VM key, file name)."""
    if semantics.joins_cmdlets_to_sessions:
        return semantics.vm_join_key(run['VirtualMachineName']), run['FileName']
    return run['FileName']


def join_on_file_name(_, grouped, semantics):
    """Sentinel: every run of a script file name with every cmdlet list of that name."""
    del semantics
    scripts = list(grouped[SCRIPTS])
    if not scripts:
        return
    for run in grouped[RUNS]:
        for script in scripts:
            yield run_command_data(run, script, script['PowershellScriptCommands'], script['ScriptFingerprintHash'])


def join_on_vm_and_time(_, grouped, semantics):
    """Strict: each run of a script on a VM with the cmdlet events of that script on that VM between
    the file's creation and the session's end plus the tolerance; none, no row."""
    events = list(grouped[SCRIPTS])
    if not events:
        return
    for run in grouped[RUNS]:
        low, high = run['PowershellFileCreatedTimestamp'], run['EndTime'] + semantics.exec_tolerance_us
        ran = [event for event in events if low <= event.time <= high]
        if not ran:
            continue
        cmdlets = kql.sorted_ordinally(event.cmdlet for event in ran)
        script = {
            'PowershellFileName': run['FileName'],
            'InitiatingProcessCommandLine': '',
            'PowershellExecStartTime': min(event.time for event in ran),
            'PowershellExecEnd': max(event.time for event in ran),
        }
        yield run_command_data(run, script, cmdlets, fingerprints.strict_fingerprint(cmdlets, run['FileSize']))


def join_script_cmdlets(semantics):
    """The join of one key's runs and scripts under `semantics`."""
    return join_on_vm_and_time if semantics.joins_cmdlets_to_sessions else join_on_file_name


def window_run_command_data(runs, scripts, semantics):
    """RunCommandData of one window's session/file rows and its keyed cmdlet lists (sentinel) or
    events (strict): `JoinScriptCmdlets` on lists."""
    join = join_script_cmdlets(semantics)
    grouped = co_group_by_key({RUNS: [(run_key(run, semantics), run) for run in runs], SCRIPTS: scripts})
    return [row for key, group in grouped.items() for row in join(key, group, semantics)]


class JoinScriptCmdlets(beam.PTransform):
    """{'runs': (window, session/file row), 'scripts': ((window, key), cmdlet list or event)} -> (window,
    RunCommandData row)."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, inputs):
        semantics = self._semantics
        join = join_script_cmdlets(semantics)
        runs = inputs[RUNS] | 'KeyRunsByScript' >> beam.MapTuple(
            lambda window, run: key_in_window(window, (run_key(run, semantics), run)))
        return (
            {RUNS: runs, SCRIPTS: inputs[SCRIPTS]}
            | 'CoGroupByScript' >> beam.CoGroupByKey()
            | 'JoinCmdlets' >> beam.FlatMapTuple(
                lambda window_and_key, grouped: (
                    (window_and_key[0], row) for row in join(window_and_key[1], grouped, semantics))))
