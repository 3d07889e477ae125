"""The README's minimal input: each row is read without a dead letter, and a run on it prints what
the README shows and gives its one alert in either semantics."""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from transforms.read.input_files import first_records
from transforms.read.schema import TABLES

README = (Path(__file__).resolve().parents[1] / 'README.md').read_text(encoding='utf-8')


def minimal_rows():
    """{table: text of its minimal.jsonl} as the README gives them."""
    blocks = dict(re.findall(r'`(\w+)/minimal\.jsonl`:\n\n```jsonl\n(.*?)```', README, re.S))
    assert sorted(blocks) == sorted(TABLES)
    return blocks


def write_inputs(root):
    argv = []
    for table, text in minimal_rows().items():
        path = root / 'exports' / table / 'minimal.jsonl'
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding='utf-8')
        argv += ['--' + rare_runcommand.TABLE_OPTIONS[table], 'exports/%s/minimal.jsonl' % table]
    return argv


def test_every_minimal_row_is_read_without_a_dead_letter(tmp_path):
    write_inputs(tmp_path)
    for table, text in minimal_rows().items():
        rows, dead = first_records(str(tmp_path / 'exports' / table / 'minimal.jsonl'), table, rows=10)
        assert dead == [] and len(rows) == text.count('\n'), table


@pytest.mark.slow
@pytest.mark.parametrize('semantics', ['sentinel', 'strict'])
def test_a_run_on_the_minimal_rows_prints_what_the_readme_shows(tmp_path, monkeypatch, semantics):
    argv = write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', 'out', '--semantics', semantics] + argv)
    shown = re.search(r'At the end \(the run of the minimal input above\):\n\n```text\n(.*?)```', README, re.S).group(1)
    if semantics == 'sentinel':   # the README shows the default semantics; strict counts its stages its own way
        assert printed.getvalue().lstrip('\n') == shown
    alert_line = next(line for line in shown.splitlines() if line.startswith('ALERT '))
    assert printed.getvalue().count('ALERT ') == 1 and alert_line in printed.getvalue()
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    activity = summary['inputs'][0]
    assert activity['bytes'] == (tmp_path / activity['file']).stat().st_size
    assert '"bytes": %d' % activity['bytes'] in README
    card = summary['alerts'][0]
    assert (card['session_start'], card['session_end'], card['subscription'], card['PowershellFileSize']) == (
        '2024-03-01T10:00:00.000000Z', '2024-03-01T10:01:00.000000Z', '00000000-0000-0000-0000-000000000001', 120)
