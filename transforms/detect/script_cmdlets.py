"""The PowerShell cmdlets that each Run Command script ran, from DeviceEvents.

KQL (sentinel): every DeviceEvents row (no ActionType, device or time filter) whose command line has
``-File`` and yields a script name with ``extract(@"\\-File\\s(script[0-9]{1,9}\\.ps1)", 1, ...)``;
the cmdlet is ``tostring(parse_json(AdditionalFields).Command)`` (``""`` when absent, and kept),
dropped when equal to the script name (case-sensitive), upper-cased with ToUpperInvariant, and the
sorted list is made per (PowershellFileName, InitiatingProcessCommandLine), pooling every VM.

Strict: only ``ActionType == "PowerShellCommand"`` events whose Command is not empty or white space
count, and each stays attached to its VM, its script name and the start of its PowerShell process
(``InitiatingProcessCreationTime``; where Defender recorded none, the event's own time), so that
`transforms.detect.script_runs` can give it to the one run of that script whose file the process ran.
"""

from functools import lru_cache
from typing import NamedTuple

import apache_beam as beam

from transforms.detect import kql
from transforms.detect.dedup import DropDuplicateRecords, distinct_records
from transforms.detect.file_joins import host_name
from transforms.detect.fingerprints import sentinel_fingerprint
from transforms.detect.in_memory import combine_per_key
from transforms.detect.windows import key_in_window
from transforms.read.schema import DEVICE_EVENTS


class CmdletEvent(NamedTuple):
    """One cmdlet a script ran, and when."""

    time: int
    cmdlet: str


class ProcessCmdlet(NamedTuple):
    """Strict: one cmdlet a script ran, when, and when its PowerShell process started."""

    time: int
    cmdlet: str
    process_start: int   # InitiatingProcessCreationTime, else the event's TimeGenerated
    command_line: str


class CmdletList(NamedTuple):
    """A script's cmdlets: PowershellExecStartTime, PowershellExecEnd and the cmdlets (sorted once made)."""

    start: int
    end: int
    cmdlets: list


def command_of(additional_fields):
    """``tostring(parse_json(AdditionalFields).Command)``."""
    if isinstance(additional_fields, dict):
        return kql.tostring_dynamic(additional_fields.get('Command'))
    return ''


@lru_cache(maxsize=4096)
def script_of_command_line(command_line):
    """The script name a command line runs (``has "-File"``, then the ``extract``), ``""`` when none.
    Memoized: each cmdlet event of a script run repeats its command line."""
    if not kql.has_term(command_line, '-File'):
        return ''
    return kql.extract_script_name(command_line)


@lru_cache(maxsize=4096)
def cmdlet_name(command):
    """A cmdlet as the query lists it: ``toupper()``. Memoized: scripts call a few hundred cmdlets."""
    return kql.to_upper_invariant(command)


def script_cmdlet(row, semantics):
    """(script name, cmdlet) of a DeviceEvents row, or None when the row is not one of a script's cmdlets."""
    script_name = script_of_command_line(row['InitiatingProcessCommandLine'])
    if not script_name:
        return None
    command = command_of(row['AdditionalFields'])
    if command == script_name or not semantics.counts_cmdlet(row['ActionType'], command):
        return None
    return script_name, cmdlet_name(command)


def _earliest(first, second):
    return second if first is None or (second is not None and second < first) else first


def _latest(first, second):
    return second if first is None or (second is not None and second > first) else first


class CmdletListCombineFn(beam.CombineFn):
    """A script's `CmdletEvent`s -> its `CmdletList`, the cmdlets sorted ordinally (UTF-16 code units, as .NET)."""

    def create_accumulator(self):
        return CmdletList(None, None, [])

    def add_input(self, cmdlets, event):
        cmdlets.cmdlets.append(event.cmdlet)
        return CmdletList(_earliest(cmdlets.start, event.time), _latest(cmdlets.end, event.time), cmdlets.cmdlets)

    def merge_accumulators(self, lists):
        start = end = None
        merged = []
        for cmdlets in lists:
            merged.extend(cmdlets.cmdlets)
            start, end = _earliest(start, cmdlets.start), _latest(end, cmdlets.end)
        return CmdletList(start, end, merged)

    def extract_output(self, cmdlets):
        return CmdletList(cmdlets.start, cmdlets.end, kql.sorted_ordinally(cmdlets.cmdlets))


def cmdlet_by_script_run(row, semantics):
    """Sentinel: ``((script name, command line), CmdletEvent)`` of a row, or None if it is no script's cmdlet."""
    found = script_cmdlet(row, semantics)
    if found is None:
        return None
    script_name, cmdlet = found
    return (script_name, row['InitiatingProcessCommandLine']), CmdletEvent(row['TimeGenerated'], cmdlet)


def process_start(row):
    """When the PowerShell process of a DeviceEvents row started: its InitiatingProcessCreationTime,
    else (not recorded) the row's own time."""
    started = row.get('InitiatingProcessCreationTime')
    return row['TimeGenerated'] if started is None else started


def cmdlet_by_vm_and_script(row, semantics):
    """Strict: ``((VM key, script name), ProcessCmdlet)`` of a row that is a script's cmdlet."""
    script_name, cmdlet = script_cmdlet(row, semantics)
    vm_key = semantics.device_vm_key(host_name(row['DeviceName']))
    return (vm_key, script_name), ProcessCmdlet(row['TimeGenerated'], cmdlet, process_start(row),
                                                row['InitiatingProcessCommandLine'])


def to_script(key, cmdlets):
    """(script name, script summary) of one (script name, command line) and its `CmdletList`."""
    script_name, command_line = key
    return script_name, {
        'PowershellFileName': script_name,
        'InitiatingProcessCommandLine': command_line,
        'PowershellExecStartTime': cmdlets.start,
        'PowershellExecEnd': cmdlets.end,
        'PowershellScriptCommands': cmdlets.cmdlets,
        # Computed once per list here rather than once per joined row.
        'ScriptFingerprintHash': sentinel_fingerprint(cmdlets.cmdlets),
    }


def window_script_cmdlet_lists(device_events, semantics):
    """Sentinel: (script name, script summary) of one window's DeviceEvents rows: `ScriptCmdletLists` on a list."""
    keyed = (cmdlet_by_script_run(row, semantics) for row in device_events)
    lists = combine_per_key((pair for pair in keyed if pair is not None), CmdletListCombineFn())
    return [to_script(key, cmdlets) for key, cmdlets in lists.items()]


def scripts_of_lists(accumulators):
    """Sentinel: (script name, script summary) of {(script name, command line): `CmdletListCombineFn`
    accumulator}."""
    combine = CmdletListCombineFn()
    return [to_script(key, combine.extract_output(cmdlets)) for key, cmdlets in accumulators.items()]


def window_script_cmdlet_events(device_events, semantics):
    """Strict: ((VM key, script name), ProcessCmdlet) of one window's DeviceEvents rows: `ScriptCmdletEvents`
    on a list."""
    cmdlet_rows = [row for row in device_events if script_cmdlet(row, semantics) is not None]
    if semantics.drops_duplicate_records:
        cmdlet_rows = distinct_records(DEVICE_EVENTS, cmdlet_rows)
    return [cmdlet_by_vm_and_script(row, semantics) for row in cmdlet_rows]


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
            keyed = cmdlet_by_script_run(row, semantics)
            if keyed is not None:
                yield key_in_window(window, keyed)

        return (
            device_events
            | 'ExtractScriptCmdlet' >> beam.FlatMapTuple(key_cmdlet)
            | 'MakeSortedCmdletList' >> beam.CombinePerKey(CmdletListCombineFn())
            | 'KeyByScriptName' >> beam.MapTuple(
                lambda window_and_key, cmdlets: key_in_window(window_and_key[0], to_script(window_and_key[1], cmdlets))))


class ScriptCmdletEvents(beam.PTransform):
    """(window, DeviceEvents row) -> ((window, (VM key, script name)), ProcessCmdlet): strict semantics'
    cmdlet events."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, device_events):
        semantics = self._semantics
        cmdlet_rows = device_events | 'IsScriptCmdlet' >> beam.Filter(
            lambda window_row: script_cmdlet(window_row[1], semantics) is not None)
        if semantics.drops_duplicate_records:
            cmdlet_rows = cmdlet_rows | 'DropDuplicateRecords' >> DropDuplicateRecords(DEVICE_EVENTS)
        return cmdlet_rows | 'KeyByVmAndScript' >> beam.MapTuple(
            lambda window, row: key_in_window(window, cmdlet_by_vm_and_script(row, semantics)))
