"""Rule metadata: what the alerts say about the rule (name, severity, tactics, entities, schedule).

The bundled metadata is `rule_metadata.yaml` beside this module; ``--rule`` reads any Sentinel analytic rule
YAML instead and validates it: every problem found is reported at once in one `RuleError`.
"""

import dataclasses
import os
import re

import yaml

BUNDLED_RULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'rule_metadata.yaml')

# The result columns of the query's final project, in order.
RESULT_COLUMNS = (
    'timestamp', 'StartTime', 'EndTime', 'PowershellFileName', 'VirtualMachineName', 'Caller', 'CallerName',
    'CallerUPNSuffix', 'CallerIpAddress', 'PowershellScriptCommands', 'PowershellFileSize',
    'ScriptFingerprintHash', 'Prevalence', 'Scope')

# Keys every rule YAML must have for the alerts to be built.
REQUIRED_KEYS = ('id', 'name', 'severity', 'queryFrequency', 'queryPeriod', 'tactics', 'entityMappings')

# MITRE ATT&CK tactics as Sentinel names them (Enterprise and ICS, plus Sentinel's PreAttack).
ATTACK_TACTICS = frozenset([
    'Reconnaissance', 'ResourceDevelopment', 'InitialAccess', 'Execution', 'Persistence', 'PrivilegeEscalation',
    'DefenseEvasion', 'CredentialAccess', 'Discovery', 'LateralMovement', 'Collection', 'CommandAndControl',
    'Exfiltration', 'Impact', 'PreAttack', 'ImpairProcessControl', 'InhibitResponseFunction'])
# ATT&CK technique ids: T1059 or sub-technique T1059.001.
_TECHNIQUE = re.compile(r'T\d{4}(?:\.\d{3})?')
SEVERITIES = ('Informational', 'Low', 'Medium', 'High')
# Sentinel YAML spells operators gt/lt/eq/ne; ARM templates spell them GreaterThan/...
_OPERATOR_ALIASES = {'GreaterThan': 'gt', 'LessThan': 'lt', 'Equal': 'eq', 'NotEqual': 'ne'}
TRIGGER_OPERATORS = frozenset(['gt', 'lt', 'eq', 'ne', *_OPERATOR_ALIASES])
GROUPINGS = ('AlertPerResult', 'SingleAlert')
# Entity types of Sentinel's entity mappings.
ENTITY_TYPES = frozenset([
    'Account', 'AzureResource', 'CloudApplication', 'DNS', 'File', 'FileHash', 'Host', 'IP', 'IoTDevice',
    'MailCluster', 'MailMessage', 'Mailbox', 'Malware', 'Process', 'RegistryKey', 'RegistryValue',
    'SecurityGroup', 'SubmissionMail', 'URL'])
MAX_ENTITY_MAPPINGS = 10   # Sentinel: up to 10 entity mappings per rule
MAX_FIELD_MAPPINGS = 3     # Sentinel: up to 3 identifiers per entity mapping


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
        """Whether a window with `result_count` result rows raises alerts (Sentinel's alert threshold)."""
        op = _OPERATOR_ALIASES.get(self.trigger_operator, self.trigger_operator)
        threshold = self.trigger_threshold
        return {'gt': result_count > threshold, 'lt': result_count < threshold,
                'eq': result_count == threshold, 'ne': result_count != threshold}[op]


def _as_list(doc, key, problems):
    """doc[key] as a list; a scalar where a list is expected is a problem."""
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append('%s must be a list, got %r' % (key, value))
        return []
    return value


def _entity_mappings(doc, problems):
    mappings = []
    raw = _as_list(doc, 'entityMappings', problems)
    if len(raw) > MAX_ENTITY_MAPPINGS:
        problems.append('entityMappings has %d entries; Sentinel allows at most %d'
                        % (len(raw), MAX_ENTITY_MAPPINGS))
    for index, mapping in enumerate(raw):
        where = 'entityMappings[%d]' % index
        if not isinstance(mapping, dict):
            problems.append('%s must be a mapping with entityType and fieldMappings' % where)
            continue
        entity_type = mapping.get('entityType')
        if entity_type not in ENTITY_TYPES:
            problems.append('%s: unknown entityType %r (one of %s)'
                            % (where, entity_type, ', '.join(sorted(ENTITY_TYPES))))
        field_list = mapping.get('fieldMappings')
        if not isinstance(field_list, list) or not field_list:
            problems.append('%s (%s): fieldMappings must be a non-empty list' % (where, entity_type))
            continue
        if len(field_list) > MAX_FIELD_MAPPINGS:
            problems.append('%s (%s): %d fieldMappings; Sentinel allows at most %d'
                            % (where, entity_type, len(field_list), MAX_FIELD_MAPPINGS))
        fields = []
        for field in field_list:
            if not isinstance(field, dict) or not field.get('identifier') or 'columnName' not in field:
                problems.append('%s (%s): each field mapping needs identifier and columnName, got %r'
                                % (where, entity_type, field))
                continue
            column = field['columnName']
            if column not in RESULT_COLUMNS:
                problems.append('entity %s maps column %r, which the query does not return (result columns: %s)'
                                % (entity_type, column, ', '.join(RESULT_COLUMNS)))
            fields.append((str(field['identifier']), column))
        mappings.append((entity_type, tuple(fields)))
    return tuple(mappings)


def rule_from_dict(doc, source='rule'):
    """RuleMetadata from a parsed Sentinel rule YAML; RuleError lists every problem."""
    if not isinstance(doc, dict):
        raise RuleError('%s: not a YAML mapping' % source)
    problems = []
    for key in REQUIRED_KEYS:
        if key not in doc or doc[key] is None or doc[key] == '':
            problems.append('missing key %r' % key)
    tactics = tuple(_as_list(doc, 'tactics', problems))
    for tactic in tactics:
        if tactic not in ATTACK_TACTICS:
            problems.append('unknown tactic %r (ATT&CK tactics: %s)' % (tactic, ', '.join(sorted(ATTACK_TACTICS))))
    techniques = tuple(_as_list(doc, 'relevantTechniques', problems))
    for technique in techniques:
        if not isinstance(technique, str) or not _TECHNIQUE.fullmatch(technique):
            problems.append('technique %r is not of the form T1234 or T1234.001' % (technique,))
    if 'severity' in doc and doc['severity'] not in SEVERITIES:
        problems.append('unknown severity %r (one of %s)' % (doc['severity'], ', '.join(SEVERITIES)))
    mappings = _entity_mappings(doc, problems)
    operator = doc.get('triggerOperator', 'gt')
    if operator not in TRIGGER_OPERATORS:
        problems.append('unknown triggerOperator %r (one of gt, lt, eq, ne)' % (operator,))
    threshold = doc.get('triggerThreshold', 0)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 10000:
        problems.append('triggerThreshold must be an integer from 0 to 10000, got %r' % (threshold,))
        threshold = 0
    grouping_settings = doc.get('eventGroupingSettings') or {}
    if not isinstance(grouping_settings, dict):
        problems.append('eventGroupingSettings must be a mapping with aggregationKind')
        grouping_settings = {}
    grouping = grouping_settings.get('aggregationKind') or 'AlertPerResult'
    if grouping not in GROUPINGS:
        problems.append('unknown eventGroupingSettings.aggregationKind %r (one of %s)'
                        % (grouping, ', '.join(GROUPINGS)))
    from transforms.detect.windows import parse_timespan
    for key in ('queryPeriod', 'queryFrequency'):
        if doc.get(key) not in (None, ''):
            try:
                if parse_timespan(doc[key]) <= 0:
                    problems.append('%s must be positive, got %r' % (key, doc[key]))
            except ValueError as error:
                problems.append('%s: %s' % (key, error))
    if problems:
        raise RuleError('%s: %s' % (source, '; '.join(problems)))
    return RuleMetadata(
        id=str(doc['id']), name=str(doc['name']), description=str(doc.get('description') or '').strip(),
        severity=str(doc['severity']), tactics=tactics, techniques=techniques, entity_mappings=mappings,
        query_period=str(doc['queryPeriod']), query_frequency=str(doc['queryFrequency']),
        trigger_operator=operator, trigger_threshold=threshold,
        event_grouping=grouping, version=str(doc.get('version') or ''))


def load_rule(path=None):
    """The rule metadata of a Sentinel rule YAML file (default: the bundled metadata)."""
    path = path or BUNDLED_RULE
    from apache_beam.io.filesystems import FileSystems
    try:
        with FileSystems.open(path) as handle:
            text = handle.read().decode('utf-8')
    except Exception as error:  # pylint: disable=broad-except  # Beam wraps file errors in its own types
        raise RuleError('%s: cannot read the rule file: %s' % (path, error)) from error
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError('%s: not valid YAML: %s' % (path, error)) from error
    return rule_from_dict(doc, path)
