"""The two semantics of the detection and the settings each one reads.

``sentinel`` is the rule's KQL exactly, quirks included. ``strict`` is the rule as its description
means it; every difference is listed in the README and tested side by side.
"""

import dataclasses

SENTINEL = 'sentinel'
STRICT = 'strict'

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


@dataclasses.dataclass(frozen=True)
class Semantics:
    """What the transforms need to know about the chosen semantics."""

    name: str = SENTINEL
    operations: tuple = (RUN_COMMAND_ACTION,)
    process_names: tuple = (RUN_COMMAND_EXTENSION,)
    exec_tolerance_us: int = STRICT_EXEC_TOLERANCE_US

    @property
    def strict(self):
        return self.name == STRICT

    @classmethod
    def named(cls, name, operations=None, process_names=None, exec_tolerance_us=None):
        if name == SENTINEL:
            return cls(SENTINEL)
        if name != STRICT:
            raise ValueError('unknown semantics %r' % name)
        return cls(STRICT, tuple(operations or STRICT_OPERATIONS), tuple(process_names or STRICT_PROCESS_NAMES),
                   STRICT_EXEC_TOLERANCE_US if exec_tolerance_us is None else exec_tolerance_us)
