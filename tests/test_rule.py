"""Rule YAML validation: every problem reported clearly; trigger and grouping read from the YAML."""

import copy
import os
import tempfile

import pytest
import yaml

from transforms.detect.rule import BUNDLED_RULE, RuleError, load_rule, rule_from_dict


def bundled_doc():
    with open(BUNDLED_RULE, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def problems_of(doc):
    with pytest.raises(RuleError) as caught:
        rule_from_dict(doc, 'my_rule.yaml')
    return str(caught.value)


def test_bundled_rule_loads():
    rule = load_rule()
    assert rule.id == '5239248b-abfb-4c6a-8177-b104ade5db56'
    assert rule.tactics == ('LateralMovement', 'Execution')
    assert rule.techniques == ('T1570', 'T1059.001')
    assert rule.event_grouping == 'AlertPerResult'
    assert (rule.trigger_operator, rule.trigger_threshold) == ('gt', 0)
    assert ('IP', (('Address', 'CallerIpAddress'),)) in rule.entity_mappings


@pytest.mark.parametrize('key', ['id', 'name', 'severity', 'queryFrequency', 'queryPeriod', 'tactics',
                                 'entityMappings'])
def test_missing_key_is_named(key):
    doc = bundled_doc()
    del doc[key]
    message = problems_of(doc)
    assert message.startswith('my_rule.yaml: ')
    assert "missing key '%s'" % key in message


def test_bad_tactic():
    doc = bundled_doc()
    doc['tactics'] = ['Execution', 'LateralMovment']
    message = problems_of(doc)
    assert "unknown tactic 'LateralMovment'" in message
    assert "'Execution'" not in message.split('(')[0]


def test_tactics_must_be_a_list():
    doc = bundled_doc()
    doc['tactics'] = 'Execution'
    assert 'tactics must be a list' in problems_of(doc)


@pytest.mark.parametrize('technique', ['T159', 'T1059.1', 't1059', 'T1059.0011', 'Execution', 1059])
def test_bad_technique_format(technique):
    doc = bundled_doc()
    doc['relevantTechniques'] = ['T1570', technique]
    message = problems_of(doc)
    assert 'technique %r is not of the form T1234 or T1234.001' % (technique,) in message


def test_good_sub_technique_accepted():
    doc = bundled_doc()
    doc['relevantTechniques'] = ['T1059', 'T1059.001']
    assert rule_from_dict(doc).techniques == ('T1059', 'T1059.001')


def test_entity_mapping_naming_a_non_result_column():
    doc = bundled_doc()
    doc['entityMappings'][1]['fieldMappings'][0]['columnName'] = 'IPAddress'
    message = problems_of(doc)
    assert "entity IP maps column 'IPAddress', which the query does not return" in message


def test_unknown_entity_type_and_malformed_field_mapping():
    doc = bundled_doc()
    doc['entityMappings'].append({'entityType': 'Hostname', 'fieldMappings': [{'identifier': 'HostName'}]})
    message = problems_of(doc)
    assert "unknown entityType 'Hostname'" in message
    assert 'each field mapping needs identifier and columnName' in message


def test_every_problem_reported_at_once():
    doc = bundled_doc()
    del doc['name']
    doc['tactics'] = ['Nope']
    doc['relevantTechniques'] = ['X1']
    doc['severity'] = 'Critical'
    doc['triggerOperator'] = 'greater'
    doc['triggerThreshold'] = -1
    doc['queryPeriod'] = 'one day'
    doc['eventGroupingSettings'] = {'aggregationKind': 'AlertPerEntity'}
    message = problems_of(doc)
    for fragment in ("missing key 'name'", "unknown tactic 'Nope'", "technique 'X1'", "unknown severity 'Critical'",
                     "unknown triggerOperator 'greater'", 'triggerThreshold must be an integer',
                     'queryPeriod: not a Kusto timespan', "aggregationKind 'AlertPerEntity'"):
        assert fragment in message, fragment


def test_not_a_mapping():
    with pytest.raises(RuleError, match='not a YAML mapping'):
        rule_from_dict(['id'], 'x.yaml')


def test_grouping_and_trigger_read_from_yaml():
    doc = bundled_doc()
    doc['eventGroupingSettings'] = {'aggregationKind': 'SingleAlert'}
    doc['triggerOperator'] = 'GreaterThan'
    doc['triggerThreshold'] = 2
    rule = rule_from_dict(doc)
    assert rule.event_grouping == 'SingleAlert'
    assert [rule.triggers(n) for n in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize('operator,threshold,expected', [
    ('gt', 1, [False, True, True]), ('lt', 2, [True, False, False]), ('eq', 1, [True, False, False]),
    ('ne', 1, [False, True, True]), ('NotEqual', 2, [True, False, True])])
def test_trigger_operators(operator, threshold, expected):
    doc = copy.deepcopy(bundled_doc())
    doc['triggerOperator'], doc['triggerThreshold'] = operator, threshold
    assert [rule_from_dict(doc).triggers(n) for n in (1, 2, 3)] == expected


def test_load_rule_errors_name_the_file():
    with tempfile.TemporaryDirectory() as tmp:
        bad_yaml = os.path.join(tmp, 'bad.yaml')
        with open(bad_yaml, 'w', encoding='utf-8') as handle:
            handle.write('id: [unclosed\n')
        with pytest.raises(RuleError, match='bad.yaml: not valid YAML'):
            load_rule(bad_yaml)
        with pytest.raises(RuleError, match='cannot read the rule file'):
            load_rule(os.path.join(tmp, 'absent.yaml'))
        custom = os.path.join(tmp, 'custom.yaml')
        doc = bundled_doc()
        doc['eventGroupingSettings'] = {'aggregationKind': 'SingleAlert'}
        with open(custom, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(doc, handle)
        assert load_rule(custom).event_grouping == 'SingleAlert'
