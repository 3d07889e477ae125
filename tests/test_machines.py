"""Strict semantics' pure helpers: the machine an ARM scope names, the computer names Defender knows it
by, its session identity, and which commands are blank (README, "Two semantics", rows 2, 3, 6, 11)."""

import hashlib
import json

import pytest

from transforms.detect.semantics import (Machine, Semantics, azure_cli_prefix, base36, computer_names, is_blank,
                                         machine_of, parse_resource_id, parse_scale_set_prefixes)

RG = '/subscriptions/s1/resourceGroups/rg/providers/'
STRICT = Semantics.named('strict')
SENTINEL = Semantics.named('sentinel')


@pytest.mark.parametrize('scope, machine', [
    (RG + 'Microsoft.Compute/virtualMachines/vm1', ('vm1', '', '')),
    (RG + 'Microsoft.Compute/virtualMachines/vm1/runCommands/rc1', ('vm1', '', '')),
    # Named like resource types: the name is what follows the type, not the last look-alike segment.
    (RG + 'Microsoft.Compute/virtualMachines/machines/runCommands/rc1', ('machines', '', '')),
    (RG + 'Microsoft.Compute/virtualMachines/virtualMachines/runCommands/runCommands', ('virtualMachines', '', '')),
    (RG + 'Microsoft.Compute/virtualMachines/runCommands', ('runCommands', '', '')),
    (RG + 'Microsoft.HybridCompute/machines/virtualMachines/runCommands/rc1', ('virtualMachines', '', '')),
    (RG + 'Microsoft.HybridCompute/machines/arc1', ('arc1', '', '')),
    (RG + 'microsoft.compute/VIRTUALMACHINES/Vm1', ('Vm1', '', '')),          # types ignore case, names keep it
    (RG + 'Microsoft.Compute/virtualMachines/vm1/', ('vm1', '', '')),         # a trailing slash
    ('/subscriptions/s1/resourceGroups/providers/providers/Microsoft.Compute/virtualMachines/vm1',
     ('vm1', '', '')),                                                         # a resource group named providers
    (RG + 'Microsoft.Compute/virtualMachineScaleSets/ss1/virtualMachines/3', ('ss1_3', 'ss1', '3')),
    (RG + 'Microsoft.Compute/virtualMachineScaleSets/ss1/virtualMachines/3/runCommands/rc', ('ss1_3', 'ss1', '3')),
    (RG + 'Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Authorization/locks/l1', ('vm1', '', '')),
])
def test_the_machine_of_a_scope(scope, machine):
    assert machine_of(scope)[:3] == machine


@pytest.mark.parametrize('scope', [
    '/subscriptions/s1/resourceGroups/app-dev-02',                              # a resource group
    RG + 'Microsoft.ClassicCompute/virtualMachinesV2/classic-vm-01',            # not a machine type
    RG + 'Microsoft.Compute/virtualMachineScaleSets/ss1',                       # the scale set itself
    RG + 'Microsoft.Compute/disks/virtualMachines',                             # a disk named virtualMachines
    RG + 'Microsoft.Compute/virtualMachines',                                   # a type without a name
    RG + 'Microsoft.Compute/virtualMachines//runCommands/rc1',                  # an empty name
    'virtualMachines/vm1', 'not an id', '', None, 5, {'scope': 'x'},
])
def test_scopes_that_name_no_machine(scope):
    assert machine_of(scope) is None


def test_resource_ids_are_read_by_position():
    assert parse_resource_id('/subscriptions/s/resourceGroups/rg/providers/Ns/t1/n1/t2/n2/t3') == (
        'Ns', [('t1', 'n1'), ('t2', 'n2')])
    assert parse_resource_id('/providers/Microsoft.Management/managementGroups/mg') == (
        'Microsoft.Management', [('managementGroups', 'mg')])
    assert parse_resource_id('/subscriptions/s/resourceGroups/rg') is None


@pytest.mark.parametrize('number, text', [(0, '0'), (3, '3'), (10, 'A'), (35, 'Z'), (36, '10'), (85, '2D'),
                                          (1146, 'VU'), (36 ** 6 - 1, 'ZZZZZZ')])
def test_base36(number, text):
    assert base36(number) == text


def test_scale_set_computer_names():
    # Microsoft's example: prefix nsgvmss, instance 85 -> nsgvmss00002D.
    machine = machine_of(RG + 'Microsoft.Compute/virtualMachineScaleSets/nsgvmss/virtualMachines/85')
    assert computer_names(machine, ('nsgvmss',)) == ('nsgvmss00002D',)
    assert computer_names(machine_of(RG + 'Microsoft.Compute/virtualMachines/vm1'), ('ignored',)) == ('vm1',)
    flexible_name = Machine('ss1_ab12cd34', 'ss1', 'ab12cd34', '')    # not a decimal instance id
    assert computer_names(flexible_name, ('ss1',)) == ('ss1_ab12cd34',)


def test_the_azure_cli_default_prefix():
    # azure-cli create_vmss: the first five characters of the name without hyphens, lower-cased, then
    # the start of the SHA-256 hex digest of the scale set's resource id: nine characters in all.
    scale_set_id = RG + 'Microsoft.Compute/virtualMachineScaleSets/My-Scale-Set'
    digest = hashlib.sha256(scale_set_id.encode()).hexdigest()
    assert azure_cli_prefix('My-Scale-Set', scale_set_id) == 'myscal'[:5] + digest[:4]
    assert azure_cli_prefix('ab', scale_set_id) == 'ab' + digest[:7]


def test_session_vm_keys():
    def keys(semantics, scope, vm_name='x'):
        return semantics.session_vm_keys({'Scope': scope, 'VirtualMachineName': vm_name})

    scale_set = RG + 'Microsoft.Compute/virtualMachineScaleSets/Web-SS/virtualMachines/35'
    cli_prefix = azure_cli_prefix('Web-SS', RG + 'Microsoft.Compute/virtualMachineScaleSets/Web-SS')
    assert keys(STRICT, scale_set) == ('web-ss00000z', cli_prefix + '00000z')
    given = Semantics.named('strict', scale_set_prefixes=parse_scale_set_prefixes('web-ss=WEB,web-ss=front,other=o'))
    assert keys(given, scale_set) == ('web00000z', 'front00000z')
    assert keys(STRICT, RG + 'Microsoft.Compute/virtualMachines/WebProd01') == ('webprod01',)
    assert keys(STRICT, RG + 'Microsoft.Compute/disks/d1') == ()
    assert keys(SENTINEL, scale_set, vm_name='35') == ('35',)
    assert (STRICT.device_vm_key('WEB00000Z'), SENTINEL.device_vm_key('WEB00000Z')) == ('web00000z', 'WEB00000Z')


@pytest.mark.parametrize('text, pairs', [
    ('ss1=web', (('ss1', 'web'),)),
    (' SS1 = web , ss2=api ', (('ss1', 'web'), ('ss2', 'api'))),
    ('', None),
    (None, None),
])
def test_scale_set_prefix_option(text, pairs):
    assert parse_scale_set_prefixes(text) == pairs


@pytest.mark.parametrize('text', ['ss1', 'ss1=', '=web', 'a=b=c', 'a=b,,c=d'])
def test_scale_set_prefix_option_refuses(text):
    with pytest.raises(ValueError, match='name=prefix'):
        parse_scale_set_prefixes(text)


def test_a_strict_session_is_its_parsed_scope_and_action():
    scope = RG + 'Microsoft.Compute/virtualMachines/vm1'
    first = json.dumps({'action': 'a', 'scope': scope, 'evidence': {'role': 'Owner'}})
    other = json.dumps({'evidence': {'role': 'Contributor'}, 'scope': scope, 'action': 'a'})
    assert STRICT.session_authorization(first) == STRICT.session_authorization(other)
    assert json.loads(STRICT.session_authorization(first)) == {'action': 'a', 'scope': scope}
    assert STRICT.session_authorization(first) != STRICT.session_authorization(first.replace('"a"', '"b"'))
    assert SENTINEL.session_authorization(first) != SENTINEL.session_authorization(other)


@pytest.mark.parametrize('text, blank', [
    ('', True), (' ', True), ('\t\n\x0b\x0c\r', True), ('\x85\xa0\u1680\u2000\u2028\u2029\u3000', True),
    ('\u200b', False),      # ZERO WIDTH SPACE is not white space in .NET
    ('\x1c', False),        # nor the information separators Python's str.isspace counts
    ('a', False), (' Get-Date ', False),
])
def test_blank_commands_are_dotnet_white_space(text, blank):
    assert is_blank(text) is blank
    assert STRICT.counts_cmdlet('PowerShellCommand', text) is not blank
    assert SENTINEL.counts_cmdlet('PowerShellCommand', text)
