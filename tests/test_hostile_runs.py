"""Whole runs over clean exports with hostile files and records mixed in: the command ends
normally, its alerts are exactly the clean data's, and every hostile record is a dead letter."""

import collections
import contextlib
import gzip
import io
import json
import shutil

import pytest

from hostile_files import avro_bomb, long_line, zeros_gz
from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from transforms.read.schema import TABLES

pytestmark = pytest.mark.slow
MIB = 1 << 20
TIME = '2024-03-01T12:00:00Z'


def alert_rows(alerts):
    return sorted(json.dumps(dict(alert['QueryResult'], QueryPeriodStart=alert['QueryPeriodStart'],
                                  QueryPeriodEnd=alert['QueryPeriodEnd']), sort_keys=True) for alert in alerts)


def expected_alerts():
    with open(rare_runcommand.SAMPLE_DIR + '/expected_alerts.jsonl', encoding='utf-8') as handle:
        return sorted(json.dumps(json.loads(line), sort_keys=True) for line in handle if line.strip())


def hostile_lines():
    """(JSON lines, how many of them are dead letters)."""
    deep = '[' * 1000 + ']' * 1000
    lines = [
        deep,                                                                         # dead: too deep
        '{"TimeGenerated": "%s", "DeviceName": "hostile", "X": %s}' % (TIME, deep),    # dead: too deep
        json.dumps({'TimeGenerated': TIME, 'DeviceName': 'hostile', 'FileSize': '9' * 5000,
                    'ReportId': '1e99999999', 'AdditionalFields': deep}),             # a row, nulls
        '{"TimeGenerated": "%s", "DeviceName": "hostile", "ReportId": %s}' % (TIME, '9' * 5000),   # a row
        json.dumps({'TimeGenerated': '9' * 5000 + '-03-01T12:00:00Z'}),               # dead: no time
        json.dumps({'TimeGenerated': '0000-03-01T12:00:00Z'}),                        # dead: no time
        json.dumps({'TimeGenerated': '10000-03-01T12:00:00Z'}),                       # dead: no time
        json.dumps({'TimeGenerated': '2024-02-29T23:59:60Z', 'DeviceName': 'hostile'}),   # a row (leap second)
        '{"TimeGenerated": "%s", "cut' % TIME,                                         # dead: not JSON
    ]
    return '\n'.join(lines) + '\n', 6


@pytest.fixture(scope='module')
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('hostile')
    patterns, hostile_dead = [], 0
    for table in TABLES:
        folder = root / table
        folder.mkdir()
        shutil.copy(rare_runcommand.SAMPLE_DIR + '/%s.jsonl.gz' % table, folder / 'clean.jsonl.gz')
        text, dead = hostile_lines()
        (folder / 'records.jsonl').write_text(text)
        whole = gzip.compress(text.encode(), mtime=0)
        (folder / 'cut.jsonl.gz').write_bytes(whole[:len(whole) // 2])
        zeros_gz(folder / 'zeros.jsonl.gz', 20 * MIB)
        long_line(folder / 'long.jsonl', 3 * MIB)
        avro_bomb(folder / 'bomb.avro', 65 * MIB, good_bodies=0)
        header = 'TimeGenerated,' + ','.join('C%d' % n for n in range(200_000))
        (folder / 'header.csv').write_text(header + '\n%s,x\n%s,y\n' % (TIME, TIME))
        # records (6), the cut gzip (its lines read + 1), zeros (1), the long line (1), the block (1), CSV (3)
        hostile_dead += dead + 1 + 1 + 1 + 1 + 3
        patterns += ['--' + rare_runcommand.TABLE_OPTIONS[table], str(folder / '*')]
    output = root / 'out'
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(output)] + patterns)
    return output, hostile_dead


def test_the_alerts_are_the_clean_datas(hostile_run):
    output, _ = hostile_run
    assert alert_rows(rare_runcommand.read_json_lines_output(str(output), 'alerts')) == expected_alerts()


def test_every_hostile_record_is_a_dead_letter(hostile_run):
    output, hostile_dead = hostile_run
    dead = list(rare_runcommand.read_json_lines_output(str(output), 'dead_letter'))
    reasons = collections.Counter(d['reason'].split(':')[0] for d in dead)
    for reason in ('JSON nested deeper than 64 levels', 'TimeGenerated missing or unparsable', 'truncated gzip',
                   'record longer than 1 MiB', 'Avro block larger than 64 MiB once decompressed',
                   'CSV header longer than 1 MiB', 'CSV record after a header that could not be read'):
        assert reasons[reason] >= len(TABLES), reason
    assert len(dead) >= hostile_dead
    assert all(d['source'] and d['table'] in TABLES for d in dead)
    summary = json.loads((output / 'summary.json').read_text())
    assert sum(summary['tables'][table]['dead_lettered'] for table in TABLES) == len(dead)
