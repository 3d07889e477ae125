"""The PowerShell cmdlets that each Run Command script ran, from DeviceEvents.

KQL (sentinel): every DeviceEvents row (no ActionType, device or time filter) whose command line has
``-File`` and yields a script name with ``extract(@"\\-File\\s(script[0-9]{1,9}\\.ps1)", 1, ...)``;
the cmdlet is ``tostring(parse_json(AdditionalFields).Command)`` (``""`` when absent, and kept),
dropped when equal to the script name (case-sensitive), upper-cased with ToUpperInvariant, and the
sorted list is made per (PowershellFileName, InitiatingProcessCommandLine), pooling every VM.

Strict: only ``ActionType == "PowerShellCommand"`` events with a non-empty Command count, and they
stay attached to their VM so that `transforms.detect.script_runs` can match them to one session's script.
"""

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.dedup import DropDuplicateRecords
from transforms.read.schema import DEVICE_EVENTS
from transforms.detect.file_joins import host_name, vm_join_key
from transforms.detect.fingerprints import sentinel_fingerprint

POWERSHELL_COMMAND = 'PowerShellCommand'


def command_of(additional_fields):
    """``tostring(parse_json(AdditionalFields).Command)``."""
    if isinstance(additional_fields, dict):
        return kql.tostring_dynamic(additional_fields.get('Command'))
    return ''


def script_cmdlet(row, semantics):
    """(script name, cmdlet) of a DeviceEvents row, or None when the row is not one of a script's cmdlets."""
    command_line = row['InitiatingProcessCommandLine']
    if not kql.has_term(command_line, '-File'):
        return None
    script_name = kql.extract_script_name(command_line)
    if not script_name:
        return None
    command = command_of(row['AdditionalFields'])
    if command == script_name:
        return None
    if semantics.strict and (row['ActionType'] != POWERSHELL_COMMAND or not command):
        return None
    return script_name, kql.to_upper_invariant(command)


class CmdletListCombineFn(beam.CombineFn):
    """(PowershellExecStartTime, PowershellExecEnd, sorted cmdlets) of one script's events."""

    def create_accumulator(self):
        return None, None, []

    def add_input(self, accumulator, event):
        start, end, cmdlets = accumulator
        time, cmdlet = event
        cmdlets.append(cmdlet)
        return (time if start is None or time < start else start,
                time if end is None or time > end else end, cmdlets)

    def merge_accumulators(self, accumulators):
        start = end = None
        merged = []
        for acc_start, acc_end, cmdlets in accumulators:
            merged.extend(cmdlets)
            if acc_start is not None and (start is None or acc_start < start):
                start = acc_start
            if acc_end is not None and (end is None or acc_end > end):
                end = acc_end
        return start, end, merged

    def extract_output(self, accumulator):
        start, end, cmdlets = accumulator
        return start, end, sorted(cmdlets)


def _to_script(key, summary):
    """(script name, script summary) of one (script name, command line) and its cmdlet list."""
    script_name, command_line = key
    start, end, cmdlets = summary
    return script_name, {
        'PowershellFileName': script_name,
        'InitiatingProcessCommandLine': command_line,
        'PowershellExecStartTime': start,
        'PowershellExecEnd': end,
        'PowershellScriptCommands': cmdlets,
        # Computed once per list here rather than once per joined row.
        'ScriptFingerprintHash': sentinel_fingerprint(cmdlets),
    }


class ScriptCmdletLists(beam.PTransform):
    """(window, DeviceEvents row) -> ((window, PowershellFileName), script summary) with the sorted
    cmdlet list.

    Sentinel only: the list is made per window, PowershellFileName and InitiatingProcessCommandLine.
    """

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, device_events):
        semantics = self._semantics

        def key_cmdlet(window, row):
            found = script_cmdlet(row, semantics)
            if found is not None:
                yield (window, found[0], row['InitiatingProcessCommandLine']), (row['TimeGenerated'], found[1])

        def key_by_script_name(key, summary):
            script_name, script = _to_script(key[1:], summary)
            return (key[0], script_name), script

        return (
            device_events
            | 'ExtractScriptCmdlet' >> beam.FlatMapTuple(key_cmdlet)
            | 'MakeSortedCmdletList' >> beam.CombinePerKey(CmdletListCombineFn())
            | 'KeyByScriptName' >> beam.MapTuple(key_by_script_name))


class ScriptCmdletEvents(beam.PTransform):
    """(window, DeviceEvents row) -> ((window, VM key, script name), (time, cmdlet)): strict semantics'
    cmdlet events."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, device_events):
        semantics = self._semantics

        def key_event(window, row):
            found = script_cmdlet(row, semantics)
            vm_key = vm_join_key(host_name(row['DeviceName']), semantics)
            return (window, vm_key, found[0]), (row['TimeGenerated'], found[1])

        return (
            device_events
            | 'IsScriptCmdlet' >> beam.Filter(lambda window_row: script_cmdlet(window_row[1], semantics) is not None)
            | 'DropDuplicateRecords' >> DropDuplicateRecords(DEVICE_EVENTS)
            | 'KeyByVmAndScript' >> beam.MapTuple(key_event))
