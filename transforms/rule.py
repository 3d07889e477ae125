"""Rule metadata: what the alerts say about the rule (name, severity, tactics, entities, schedule).

The bundled metadata is `pipelines/rule_metadata.yaml`; ``--rule`` reads any Sentinel analytic rule
YAML instead and validates it.
"""

import dataclasses
import os
import re

import yaml

BUNDLED_RULE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'pipelines', 'rule_metadata.yaml')

# The result columns of the query's final project, in order.
RESULT_COLUMNS = (
    'timestamp', 'StartTime', 'EndTime', 'PowershellFileName', 'VirtualMachineName', 'Caller', 'CallerName',
    'CallerUPNSuffix', 'CallerIpAddress', 'PowershellScriptCommands', 'PowershellFileSize',
    'ScriptFingerprintHash', 'Prevalence', 'Scope')

# MITRE ATT&CK Enterprise tactics as Sentinel names them.
ATTACK_TACTICS = frozenset([
    'Reconnaissance', 'ResourceDevelopment', 'InitialAccess', 'Execution', 'Persistence', 'PrivilegeEscalation',
    'DefenseEvasion', 'CredentialAccess', 'Discovery', 'LateralMovement', 'Collection', 'CommandAndControl',
    'Exfiltration', 'Impact', 'PreAttack', 'ImpairProcessControl', 'InhibitResponseFunction'])
_TECHNIQUE = re.compile(r'T\d{4}(?:\.\d{3})?')
_TRIGGER_OPERATORS = {'gt', 'lt', 'eq', 'ne', 'GreaterThan', 'LessThan', 'Equal', 'NotEqual'}
_GROUPINGS = {'AlertPerResult', 'SingleAlert'}


class RuleError(ValueError):
    """A rule YAML that cannot be used, with every problem found."""


@dataclasses.dataclass(frozen=True)
class RuleMetadata:
    id: str
    name: str
    description: str
    severity: str
    tactics: tuple
    techniques: tuple
    entity_mappings: tuple
    query_period: str
    query_frequency: str
    trigger_operator: str = 'gt'
    trigger_threshold: int = 0
    event_grouping: str = 'AlertPerResult'
    version: str = ''

    def triggers(self, result_count):
        """Whether a window with `result_count` result rows raises alerts."""
        op = {'GreaterThan': 'gt', 'LessThan': 'lt', 'Equal': 'eq', 'NotEqual': 'ne'}.get(
            self.trigger_operator, self.trigger_operator)
        threshold = self.trigger_threshold
        return {'gt': result_count > threshold, 'lt': result_count < threshold,
                'eq': result_count == threshold, 'ne': result_count != threshold}[op]


def rule_from_dict(doc, source='rule'):
    """RuleMetadata from a parsed Sentinel rule YAML; RuleError lists every problem."""
    problems = []
    if not isinstance(doc, dict):
        raise RuleError('%s: not a YAML mapping' % source)
    for key in ('id', 'name', 'severity', 'queryFrequency', 'queryPeriod', 'tactics', 'entityMappings'):
        if key not in doc:
            problems.append('missing key %r' % key)
    tactics = tuple(doc.get('tactics') or ())
    for tactic in tactics:
        if tactic not in ATTACK_TACTICS:
            problems.append('unknown tactic %r' % tactic)
    techniques = tuple(doc.get('relevantTechniques') or ())
    for technique in techniques:
        if not isinstance(technique, str) or not _TECHNIQUE.fullmatch(technique):
            problems.append('technique %r is not of the form T1234 or T1234.001' % technique)
    if doc.get('severity') not in (None, 'Informational', 'Low', 'Medium', 'High'):
        problems.append('unknown severity %r' % doc.get('severity'))
    mappings = []
    for mapping in doc.get('entityMappings') or ():
        fields = tuple((f.get('identifier'), f.get('columnName')) for f in mapping.get('fieldMappings') or ())
        for _, column in fields:
            if column not in RESULT_COLUMNS:
                problems.append('entity %s maps column %r, which the query does not return'
                                % (mapping.get('entityType'), column))
        mappings.append((mapping.get('entityType'), fields))
    operator = doc.get('triggerOperator', 'gt')
    if operator not in _TRIGGER_OPERATORS:
        problems.append('unknown triggerOperator %r' % operator)
    grouping = ((doc.get('eventGroupingSettings') or {}).get('aggregationKind')) or 'AlertPerResult'
    if grouping not in _GROUPINGS:
        problems.append('unknown eventGroupingSettings.aggregationKind %r' % grouping)
    from transforms.windows import parse_timespan
    for key in ('queryPeriod', 'queryFrequency'):
        if key in doc:
            try:
                parse_timespan(doc[key])
            except ValueError as error:
                problems.append('%s: %s' % (key, error))
    if problems:
        raise RuleError('%s: %s' % (source, '; '.join(problems)))
    return RuleMetadata(
        id=str(doc['id']), name=str(doc['name']), description=str(doc.get('description', '')).strip(),
        severity=str(doc['severity']), tactics=tactics, techniques=techniques, entity_mappings=tuple(mappings),
        query_period=str(doc['queryPeriod']), query_frequency=str(doc['queryFrequency']),
        trigger_operator=operator, trigger_threshold=int(doc.get('triggerThreshold', 0)),
        event_grouping=grouping, version=str(doc.get('version', '')))


def load_rule(path=None):
    """The rule metadata of a Sentinel rule YAML file (default: the bundled metadata)."""
    path = path or BUNDLED_RULE
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path) as handle:
        text = handle.read().decode('utf-8')
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError('%s: not valid YAML: %s' % (path, error)) from error
    return rule_from_dict(doc, path)
