"""RunCommandData: each session's script file joined with the cmdlets that script ran.

KQL (sentinel): an inner join of the session/file rows with the per-script cmdlet lists on
``$left.FileName == $right.PowershellFileName`` only, so every session that wrote ``script3.ps1``
joins every ``script3.ps1`` list of the window, from any VM or command line.

Strict: one row per script run. The script file events of one machine and file name, in time order,
are cut into versions of the file: a creation (any ActionType but ``FileModified``) by another session
than the current version's owner, or by none, starts one (`starts_a_version`), and the session its
first event belongs to (`transforms.detect.file_joins`) owns it. The run of a
version is what the PowerShell processes started with ``-File <that script>`` on that machine did:
processes started at or after its creation, before the next creation of that file name there, and no
later than its session's end plus ``Semantics.max_run_delay_us``. Its cmdlets are all of those
processes' cmdlets, its file size that of the last file event at or before the first of them started
(the file as executed), its fingerprint `fingerprints.strict_fingerprint` of both. A version without
a session or without any process gives no row.
"""

import apache_beam as beam

from transforms.detect import fingerprints, kql
from transforms.detect.in_memory import co_group_by_key
from transforms.detect.semantics import FILE_MODIFIED
from transforms.detect.windows import key_in_window
from transforms.read.dynamic import canonical_json

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
        return run['VmKey'], run['FileName']
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


def file_event_order(script_file):
    """Time order of one file name's events; events of the same instant in canonical order."""
    return script_file['PowershellFileCreatedTimestamp'], canonical_json(
        {key: value for key, value in script_file.items() if key != 'Session'})


def starts_a_version(script_file, versions):
    """Whether a file event (in time order) starts a new version of its file: the first event does; a
    creation (any ActionType but ``FileModified``, also an unknown one) does unless it belongs to the
    session that owns the current version (a session that writes its script twice wrote one script)."""
    if not versions:
        return True
    if script_file['ActionType'] == FILE_MODIFIED:
        return False
    owner = versions[-1][0]['Session']
    return owner is None or script_file['Session'] != owner


def file_versions(script_files):
    """The versions of one machine's file of one name: [(first event, [its file events in time order])]."""
    versions = []
    for script_file in sorted(script_files, key=file_event_order):
        if starts_a_version(script_file, versions):
            versions.append((script_file, [script_file]))
        else:
            versions[-1][1].append(script_file)
    return versions


def join_runs_of_versions(_, grouped, semantics):
    """Strict: one RunCommandData row per version of a script file whose session's run ran cmdlets."""
    events = list(grouped[SCRIPTS])
    if not events:
        return
    versions = file_versions(grouped[RUNS])
    for index, (creation, version_events) in enumerate(versions):
        session = creation['Session']
        if session is None:
            continue
        created = creation['PowershellFileCreatedTimestamp']
        next_created = versions[index + 1][0]['PowershellFileCreatedTimestamp'] if index + 1 < len(versions) else None
        latest_start = session['EndTime'] + semantics.max_run_delay_us
        ran = [event for event in events
               if created <= event.process_start <= latest_start
               and (next_created is None or event.process_start < next_created)]
        if not ran:
            continue
        first_start = min(event.process_start for event in ran)
        as_executed = [event for event in version_events if event['PowershellFileCreatedTimestamp'] <= first_start][-1]
        cmdlets = kql.sorted_ordinally(event.cmdlet for event in ran)
        first = min(ran, key=lambda event: (event.time, event.command_line))
        run = dict(session, PowershellFileCreatedTimestamp=created, FileSize=as_executed['FileSize'])
        script = {
            'PowershellFileName': creation['FileName'],
            'InitiatingProcessCommandLine': first.command_line,
            'PowershellExecStartTime': first.time,
            'PowershellExecEnd': max(event.time for event in ran),
        }
        yield run_command_data(run, script, cmdlets, fingerprints.strict_fingerprint(cmdlets, run['FileSize']))


def join_script_cmdlets(semantics):
    """The join of one key's runs and scripts under `semantics`."""
    return join_runs_of_versions if semantics.joins_cmdlets_to_sessions else join_on_file_name


def window_run_command_data(runs, scripts, semantics):
    """RunCommandData of one window's session/file rows (strict: attributed file events) and its keyed
    cmdlet lists (sentinel) or events (strict): `JoinScriptCmdlets` on lists."""
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
