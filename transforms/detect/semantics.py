"""The two semantics of the detection, and every difference between them, each in one place.

``sentinel`` is the rule's KQL exactly, quirks included. ``strict`` is the rule as its description
means it. The stages ask a `Semantics` what to do wherever the two differ; each method or field below
is one row of the README's table of differences (the number in its docstring), tested side by side
in tests/test_semantics.py. Nothing else in the detection branches on the semantics' name.
"""

import dataclasses

from transforms.detect import kql

SENTINEL = 'sentinel'
STRICT = 'strict'
NAMES = (SENTINEL, STRICT)

# The operation of the classic ("action") Run Command, the only one the KQL looks at.
RUN_COMMAND_ACTION = 'Microsoft.Compute/virtualMachines/runCommand/action'

# Strict mode: every ARM operation that runs a script on a machine through Run Command.
STRICT_OPERATIONS = (
    RUN_COMMAND_ACTION,
    'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action',
    'Microsoft.Compute/virtualMachines/runCommands/write',
    'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write',
    'Microsoft.HybridCompute/machines/runCommands/write',
)

# Guest-side processes that write the downloaded script: the action form's extension handler;
# in strict mode also the managed Run Command handler (an assumption, see the README).
RUN_COMMAND_EXTENSION = 'RunCommandExtension.exe'
STRICT_PROCESS_NAMES = (RUN_COMMAND_EXTENSION, 'RunCommandHandlerWindows.exe')

# Strict mode: cmdlets count when they ran between the script file's creation and the session's
# end plus this tolerance (the guest reports the script's execution after ARM's final event).
STRICT_EXEC_TOLERANCE_US = 5 * 60 * 1_000_000

POWERSHELL_COMMAND = 'PowerShellCommand'
_MACHINE_TYPES = ('virtualmachines', 'machines')


def scope_of(authorization):
    """``parse_json(Authorization).scope``: the dynamic value, or None."""
    parsed = kql.parse_json_text(authorization)
    if isinstance(parsed, dict):
        return parsed.get('scope')
    return None


def machine_name_in_scope(scope):
    """The machine name in an ARM scope: the segment after ``virtualMachines`` or ``machines``."""
    if not isinstance(scope, str):
        return ''
    segments = scope.split('/')
    for index in range(len(segments) - 2, -1, -1):
        if segments[index].lower() in _MACHINE_TYPES and segments[index + 1]:
            return segments[index + 1]
    return ''


@dataclasses.dataclass(frozen=True)
class Semantics:
    """What the stages need to know about the chosen semantics."""

    name: str = SENTINEL
    operations: tuple = (RUN_COMMAND_ACTION,)
    process_names: tuple = (RUN_COMMAND_EXTENSION,)
    exec_tolerance_us: int = STRICT_EXEC_TOLERANCE_US

    @classmethod
    def named(cls, name, operations=None, process_names=None, exec_tolerance_us=None):
        if name == SENTINEL:
            return cls(SENTINEL)
        if name != STRICT:
            raise ValueError('unknown semantics %r' % name)
        return cls(STRICT, tuple(operations or STRICT_OPERATIONS), tuple(process_names or STRICT_PROCESS_NAMES),
                   STRICT_EXEC_TOLERANCE_US if exec_tolerance_us is None else exec_tolerance_us)

    @property
    def _strict(self):
        return self.name == STRICT

    def is_run_command(self, operation_name):
        """#1: ``OperationNameValue =~`` one of `operations` (sentinel: only the action form)."""
        return any(kql.equals_ignore_case(operation_name, operation) for operation in self.operations)

    def is_on_a_machine(self, authorization):
        """#1, #2: sentinel: ``Authorization has "virtualMachines"``; strict: its scope names a machine."""
        if self._strict:
            return bool(machine_name_in_scope(scope_of(authorization)))
        return kql.has_term(authorization, 'virtualMachines')

    def vm_name(self, scope):
        """#2: sentinel: the last ``/`` segment of the scope's text; strict: the machine's segment."""
        if self._strict:
            return machine_name_in_scope(scope)
        return kql.kusto_split_at(kql.tostring_dynamic(scope), '/', -1) or ''

    def vm_join_key(self, vm_name):
        """#3: sentinel joins VM names as they are; strict ignoring case."""
        return kql.to_lower_simple(vm_name) if self._strict else vm_name

    @property
    def joins_cmdlets_to_sessions(self):
        """#4, #5, #7: sentinel pools a script name's cmdlets over the window and fingerprints the
        list; strict joins each session's script to the cmdlets of its VM that ran during the session,
        and fingerprints them with the file size."""
        return self._strict

    def counts_cmdlet(self, action_type, command):
        """#6: sentinel counts any DeviceEvents row (``""`` cmdlets too); strict only non-empty
        ``PowerShellCommand`` commands."""
        return not self._strict or (action_type == POWERSHELL_COMMAND and bool(command))

    @property
    def counts_sessions(self):
        """#8: sentinel counts RunCommandData rows per fingerprint; strict one per session."""
        return self._strict

    @property
    def drops_duplicate_records(self):
        """#9: strict drops duplicate input records (same record identity); sentinel counts them."""
        return self._strict

    @property
    def folds_process_names(self):
        """#10: sentinel compares the script writer's process name with ``==``; strict ignoring case."""
        return self._strict

    def is_script_writer(self, process_file_name):
        """#10: the file event's InitiatingProcessFileName is one of `process_names`."""
        if self.folds_process_names:
            name = process_file_name.lower()
            return any(name == process.lower() for process in self.process_names)
        return process_file_name in self.process_names
