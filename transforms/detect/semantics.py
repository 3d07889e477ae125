"""The two semantics of the detection, and every difference between them, each in one place.

``sentinel`` is the rule's KQL exactly, quirks included. ``strict`` is the rule as its description
means it. The stages ask a `Semantics` what to do wherever the two differ; each method or field below
is one row of the README's table of differences (the number in its docstring), tested side by side
in tests/test_semantics.py. Nothing else in the detection branches on the semantics' name.
"""

import dataclasses
import hashlib
import unicodedata
from typing import NamedTuple

from transforms.detect import kql
from transforms.read.dynamic import canonical_json

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

_MINUTE_US = 60 * 1_000_000
# Strict mode: how long after its session's end a script run (its PowerShell process) may start.
STRICT_MAX_RUN_DELAY_US = 60 * _MINUTE_US
# Strict mode: how far before and after a query window its evaluation reads rows, so that a session
# starting in the window is seen whole with its script run: the action form's longest script (90
# minutes, Microsoft's documented time-out), the run delay above, and 30 minutes of margin.
STRICT_LOOK_AHEAD_US = 180 * _MINUTE_US

POWERSHELL_COMMAND = 'PowerShellCommand'
# DeviceFileEvents ActionType that changes a file without starting a new version of it.
FILE_MODIFIED = 'FileModified'


# ------------------------------------------------------------------------ ARM resource ids
class Machine(NamedTuple):
    """The machine an ARM scope names."""

    name: str           # ARM name: the VM or Arc machine name, or "<scale set>_<instance id>"
    scale_set: str      # a uniform scale-set VM: its scale set's name, else ''
    instance_id: str    # and its instance id, else ''
    scale_set_id: str   # and the scale set's resource id as the scope spells it, else ''


def _resource_segments(resource_id):
    """(segments, index of the namespace) of an ARM resource id, or None."""
    if not isinstance(resource_id, str):
        return None
    segments = resource_id.split('/')
    if segments[:1] == ['']:
        segments = segments[1:]
    if segments[-1:] == ['']:
        segments = segments[:-1]
    position = 0
    if len(segments) >= 2 and segments[0].lower() == 'subscriptions':
        position = 2
        if len(segments) >= 4 and segments[2].lower() == 'resourcegroups':
            position = 4
    if len(segments) < position + 2 or segments[position].lower() != 'providers':
        return None
    return segments, position + 1


def parse_resource_id(resource_id):
    """(namespace, [(type, name), ...]) of an ARM resource id
    ``/subscriptions/{s}[/resourceGroups/{rg}]/providers/{namespace}/{type}/{name}[/{child type}/{child name}...]``,
    or None. Segments are read by position, so a resource group, VM or child named ``providers``,
    ``machines`` or ``virtualMachines`` is a name; a trailing ``/`` and a type without a name are
    ignored; an extension resource's second ``providers`` block ends the list."""
    found = _resource_segments(resource_id)
    if found is None:
        return None
    segments, namespace_at = found
    rest = segments[namespace_at + 1:]
    pairs = []
    for index in range(0, len(rest) - 1, 2):
        if rest[index].lower() == 'providers':
            break
        pairs.append((rest[index], rest[index + 1]))
    return segments[namespace_at], pairs


def machine_of(scope):
    """The `Machine` an ARM scope names: a VM (``Microsoft.Compute/virtualMachines/{name}``), a uniform
    scale-set VM (``Microsoft.Compute/virtualMachineScaleSets/{ss}/virtualMachines/{id}``) or an Azure
    Arc machine (``Microsoft.HybridCompute/machines/{name}``), each possibly followed by child
    resources (``/runCommands/{name}``); None for any other scope."""
    parsed = parse_resource_id(scope)
    if parsed is None:
        return None
    namespace, pairs = parsed
    namespace = namespace.lower()
    types = [kind.lower() for kind, _ in pairs[:2]]
    if namespace == 'microsoft.compute' and types[:1] == ['virtualmachines'] and pairs[0][1]:
        return Machine(pairs[0][1], '', '', '')
    if namespace == 'microsoft.compute' and types == ['virtualmachinescalesets', 'virtualmachines']:
        scale_set, instance_id = pairs[0][1], pairs[1][1]
        if scale_set and instance_id:
            segments, namespace_at = _resource_segments(scope)
            scale_set_id = '/' + '/'.join(segments[:namespace_at + 3])
            return Machine('%s_%s' % (scale_set, instance_id), scale_set, instance_id, scale_set_id)
    if namespace == 'microsoft.hybridcompute' and types[:1] == ['machines'] and pairs[0][1]:
        return Machine(pairs[0][1], '', '', '')
    return None


def scope_of(authorization):
    """``parse_json(Authorization).scope``: the dynamic value, or None."""
    parsed = kql.parse_json_text(authorization)
    if isinstance(parsed, dict):
        return parsed.get('scope')
    return None


# --------------------------------------------------------------- scale-set computer names
def base36(number):
    digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'
    text = ''
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def azure_cli_prefix(scale_set, scale_set_id):
    """The computer name prefix ``az vmss create`` gives a uniform scale set when none is given: the
    first five characters of its name without hyphens, lower-cased, then the first 9 - n hex digits of
    the SHA-256 of its resource id (azure-cli, ``create_vmss``: ``naming_prefix``, ``hash_string``)."""
    scrubbed = scale_set.replace('-', '').lower()[:5]
    digest = hashlib.sha256(scale_set_id.encode('utf-8')).hexdigest()
    return scrubbed + digest[:9 - len(scrubbed)]


def default_prefixes(machine):
    """The computer name prefixes strict tries for a scale set when none is given: its own name (as in
    the example of Microsoft's "names and instance IDs" page, and the usual choice of deployment
    templates), and the Azure CLI's default (`azure_cli_prefix`)."""
    return (machine.scale_set, azure_cli_prefix(machine.scale_set, machine.scale_set_id))


def computer_names(machine, prefixes):
    """The computer names (host names) of a machine as Defender reports them: a uniform scale-set VM is
    ``{computer name prefix}{instance id in base 36, zero-padded to six digits}`` (Microsoft, "Understand
    names and instance IDs for Azure Virtual Machine Scale Set VMs": prefix ``nsgvmss`` and instance 85
    give ``nsgvmss00002D``); any other machine's computer name is taken to be its ARM name."""
    if machine.scale_set and machine.instance_id.isdigit():
        suffix = base36(int(machine.instance_id)).rjust(6, '0')
        return tuple(prefix + suffix for prefix in prefixes)
    return (machine.name,)


# ------------------------------------------------------------------------- other helpers
def is_blank(text):
    """.NET ``String.IsNullOrWhiteSpace``: empty, or only white space (``Char.IsWhiteSpace``: the
    Unicode space, line and paragraph separators, U+0009-U+000D, U+0085 and U+00A0)."""
    return all(ch in '\t\n\x0b\x0c\r\x85\xa0' or unicodedata.category(ch) in ('Zs', 'Zl', 'Zp') for ch in text)


def parse_scale_set_prefixes(text):
    """``ss1=web,ss1=web2,ss2=api`` -> ((scale set name lower-cased, prefix), ...); None for no text."""
    if not text:
        return None
    pairs = []
    for item in text.split(','):
        name, separator, prefix = item.strip().partition('=')
        if not separator or not name.strip() or not prefix.strip() or '=' in prefix:
            raise ValueError('a scale set prefix is written name=prefix: %r' % item)
        pairs.append((name.strip().lower(), prefix.strip()))
    return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class Semantics:
    """What the stages need to know about the chosen semantics."""

    name: str = SENTINEL
    operations: tuple = (RUN_COMMAND_ACTION,)
    process_names: tuple = (RUN_COMMAND_EXTENSION,)
    max_run_delay_us: int = 0
    look_ahead_us: int = 0
    scale_set_prefixes: tuple = ()

    @classmethod
    def named(cls, name, operations=None, process_names=None, max_run_delay_us=None, look_ahead_us=None,
              scale_set_prefixes=None):
        if name == SENTINEL:
            return cls(SENTINEL)
        if name != STRICT:
            raise ValueError('unknown semantics %r' % name)
        delay = STRICT_MAX_RUN_DELAY_US if max_run_delay_us is None else max_run_delay_us
        look_ahead = STRICT_LOOK_AHEAD_US if look_ahead_us is None else look_ahead_us
        if delay < 0 or look_ahead < delay:
            raise ValueError('the strict look-ahead (%d µs) must be at least the run delay (%d µs), which must '
                             'not be negative' % (look_ahead, delay))
        return cls(STRICT, tuple(operations or STRICT_OPERATIONS), tuple(process_names or STRICT_PROCESS_NAMES),
                   delay, look_ahead, tuple(scale_set_prefixes or ()))

    @property
    def _strict(self):
        return self.name == STRICT

    def is_run_command(self, operation_name):
        """#1: ``OperationNameValue =~`` one of `operations` (sentinel: only the action form)."""
        return kql.equals_any_ignore_case(operation_name, tuple(self.operations))

    def is_on_a_machine(self, authorization):
        """#1, #2: sentinel: ``Authorization has "virtualMachines"``; strict: its scope names a machine."""
        if self._strict:
            return machine_of(scope_of(authorization)) is not None
        return kql.has_term(authorization, 'virtualMachines')

    def session_authorization(self, authorization):
        """#11: what of the Authorization identifies a session: sentinel its text as it is (another key
        order is another session); strict its parsed scope and action (canonical JSON text, which
        `scope_of` reads back)."""
        if not self._strict:
            return authorization
        parsed = kql.parse_json_text(authorization)
        if not isinstance(parsed, dict):
            return authorization
        return canonical_json({'action': parsed.get('action'), 'scope': parsed.get('scope')})

    def vm_name(self, scope):
        """#2: sentinel: the last ``/`` segment of the scope's text; strict: the machine's ARM name, read
        after the resource type segment of the resource id (``<scale set>_<instance id>`` for a
        scale-set VM)."""
        if self._strict:
            machine = machine_of(scope)
            return machine.name if machine else ''
        return kql.kusto_split_at(kql.tostring_dynamic(scope), '/', -1) or ''

    def session_vm_keys(self, session):
        """#3: what a session's VM joins the Defender device on: sentinel its name as it is; strict its
        computer names ignoring case (a uniform scale-set VM: prefix + base-36 instance id, the prefixes
        of --strict_scale_set_prefixes or the defaults of `default_prefixes`)."""
        if not self._strict:
            return (session['VirtualMachineName'],)
        machine = machine_of(session['Scope'])
        if machine is None:
            return ()
        prefixes = tuple(prefix for name, prefix in self.scale_set_prefixes if name == machine.scale_set.lower())
        names = computer_names(machine, prefixes or default_prefixes(machine))
        return tuple(dict.fromkeys(kql.to_lower_simple(name) for name in names))

    def device_vm_key(self, host_name):
        """#3: the key of a Defender device (``DeviceName`` up to the first ``.``): strict ignores case."""
        return kql.to_lower_simple(host_name) if self._strict else host_name

    @property
    def joins_cmdlets_to_sessions(self):
        """#4, #5, #7, #12: sentinel pools a script name's cmdlets over the window and joins every file
        event to every session holding it; strict gives each script file event to one session and each
        script run the cmdlets of its own PowerShell processes, and fingerprints them with the size of
        the file as executed."""
        return self._strict

    def counts_cmdlet(self, action_type, command):
        """#6: sentinel counts any DeviceEvents row (``""`` cmdlets too); strict only
        ``PowerShellCommand`` commands that are not empty or white space."""
        return not self._strict or (action_type == POWERSHELL_COMMAND and not is_blank(command))

    @property
    def counts_sessions(self):
        """#8: sentinel counts RunCommandData rows per fingerprint; strict one per session."""
        return self._strict

    @property
    def drops_duplicate_records(self):
        """#9: strict drops exact copies of an input record (same identity, same content); records
        sharing an identity with other content are kept and counted as conflicting. Sentinel counts
        every copy."""
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

    def evaluates_session(self, window, start_time):
        """#13: sentinel evaluates whatever its window's rows hold; strict reads `look_ahead_us` before
        and after the window and evaluates the sessions that start in it."""
        if not self._strict or window is None:
            return True
        window_start, window_end = window
        return window_start <= start_time < window_end
