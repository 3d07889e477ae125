"""The command line: --help lists the detection's own options, and the bundled sample runs."""

import json

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER


def test_help_lists_the_detection_options(capsys):
    assert rare_runcommand.run(['--help']) is None
    out = capsys.readouterr().out
    for option in ('--azure_activity', '--semantics', '--query_period', '--start', '--scan', '--history_days',
                   '--allowed_lateness', '--output_dir', '--sinks'):
        assert option in out


def test_bundled_sample_gives_its_expected_alerts(tmp_path, capsys):
    rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(tmp_path)])
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


def test_a_rerun_replaces_every_output_of_the_previous_run(tmp_path, capsys):
    # An earlier run with two shards per output, and its completion marker: none of it may survive
    # next to this run's one-shard outputs.
    stale = ['alerts-00000-of-00002.jsonl', 'alerts-00001-of-00002.jsonl', 'windows-00001-of-00002.jsonl',
             'dead_letter-00000-of-00003.avro', 'summary.json', 'report.html']
    for name in stale:
        (tmp_path / name).write_text('{"stale": true}\n')
    (tmp_path / 'notes.txt').write_text('not ours')
    rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(tmp_path)])
    capsys.readouterr()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert 'alerts-00001-of-00002.jsonl' not in names and 'dead_letter-00000-of-00003.avro' not in names
    assert 'notes.txt' in names
    alerts = list(rare_runcommand.read_json_lines_output(str(tmp_path), 'alerts'))
    assert len(alerts) == 7 and all('stale' not in alert for alert in alerts)
    assert json.loads((tmp_path / 'summary.json').read_text()).get('stale') is None
