"""The command line: --help lists the detection's own options, and the bundled sample runs."""

import json

from pipelines import rare_runcommand


def test_help_lists_the_detection_options(capsys):
    assert rare_runcommand.run(['--help']) is None
    out = capsys.readouterr().out
    for option in ('--azure_activity', '--semantics', '--query_period', '--start', '--scan', '--history_days',
                   '--allowed_lateness', '--output_dir', '--sinks'):
        assert option in out


def test_bundled_sample_gives_its_expected_alerts(tmp_path, capsys):
    rare_runcommand.run(['--runner=FnApiRunner', '--output_dir', str(tmp_path)])
    printed = capsys.readouterr().out
    with open(rare_runcommand.SAMPLE_DIR + '/expected_alerts.jsonl', encoding='utf-8') as handle:
        expected = sorted(json.dumps(json.loads(line), sort_keys=True) for line in handle if line.strip())
    got = []
    for alert in rare_runcommand.read_json_lines_output(str(tmp_path), 'alerts'):
        row = dict(alert['QueryResult'], QueryPeriodStart=alert['QueryPeriodStart'],
                   QueryPeriodEnd=alert['QueryPeriodEnd'])
        got.append(json.dumps(row, sort_keys=True))
    assert sorted(got) == expected and len(expected) == 7
    assert printed.count('ALERT ') == 7 and 'windows evaluated 1' in printed
