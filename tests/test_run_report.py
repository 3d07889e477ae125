"""Run report: summary.json numbers, HTML escaping of hostile strings, rendering in headless Chromium."""

import html.parser
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from transforms.detect.alerts import make_alert, query_result
from transforms.detect.rule import load_rule
from transforms.write.run_report import build_summary, render_html, write_run_report

RULE = load_rule()
SCRIPT = '<script>document.title="pwned"</script>'
IMG = '"><img src=x onerror="document.title=\'pwned\'">'
CHROMIUM = shutil.which('chromium') or (os.path.exists('/usr/bin/chromium') and '/usr/bin/chromium') or None

# The shape of `pipelines.rare_runcommand.counters(result)`: {metrics namespace: {counter name: value}},
# the read step counting per table (namespace: the table).
COUNTERS = {
    'AzureActivity': {'read': 1200, 'parsed': 1190, 'dead_lettered': 10, 'skipped_irrelevant': 0},
    'DeviceFileEvents': {'read': 800, 'parsed': 800},
    'DeviceEvents': {'read': 5000, 'parsed': 4990, 'dead_lettered': 10, 'skipped_irrelevant': 17, 'outside_range': 4},
    'detection': {'sessions': 42, 'joined_rows': 37, 'scripts': 31, 'run_command_data': 29, 'alerts': 5},
    'alerts_per_window': {'2024-05-01T00:00:00.000000Z/2024-05-02T00:00:00.000000Z': 3,
                          '2024-05-02T00:00:00.000000Z/2024-05-03T00:00:00.000000Z': 2},
    'dead_letter_reasons': {'not JSON': 12, IMG: 8},
}


def row(n, cmdlets, prevalence):
    start = 1_714_521_600_000_000 + n * 60_000_000
    return {'StartTime': start, 'EndTime': start + 1, 'PowershellFileName': 'script%d.ps1' % n,
            'VirtualMachineName': 'vm-%d' % n, 'Caller': IMG if n == 1 else 'eve@contoso.com',
            'CallerIpAddress': '10.0.0.1', 'PowershellScriptCommands': cmdlets, 'PowershellFileSize': 10,
            'ScriptFingerprintHash': '%064x' % n, 'Prevalence': prevalence, 'Scope': '/s'}


ALERTS = [
    make_alert([query_result(row(1, ['Get-Process', SCRIPT], 2.5))], RULE, 'sentinel',
               '2024-05-01T00:00:00.000000Z', '2024-05-02T00:00:00.000000Z'),
    make_alert([query_result(row(2, ['Invoke-Mimikatz', IMG], 1.25))], RULE, 'sentinel',
               '2024-05-01T00:00:00.000000Z', '2024-05-02T00:00:00.000000Z'),
    make_alert([query_result(row(3, ['Get-Date'], 10.0))], RULE, 'sentinel',
               '2024-05-02T00:00:00.000000Z', '2024-05-03T00:00:00.000000Z'),
]


@pytest.fixture
def output_dir(tmp_path):
    with open(tmp_path / 'alerts-00000-of-00001.jsonl', 'w', encoding='utf-8') as handle:
        for alert in ALERTS:
            handle.write(json.dumps(alert) + '\n')
    return tmp_path


def test_summary_json(output_dir):
    summary = write_run_report(COUNTERS, str(output_dir), generated_at='2024-05-03T00:00:00+00:00')
    on_disk = json.loads((output_dir / 'summary.json').read_text(encoding='utf-8'))
    assert on_disk == summary
    assert summary['tables']['DeviceEvents'] == {'read': 5000, 'parsed': 4990, 'dead_lettered': 10,
                                                 'skipped_irrelevant': 17, 'outside_range': 4}
    assert summary['tables']['DeviceFileEvents']['dead_lettered'] == 0
    assert summary['detection'] == {'sessions': 42, 'joined_rows': 37, 'scripts': 31, 'run_command_data': 29,
                                    'alerts': 5}
    assert [(w['window_start'][:10], w['alerts']) for w in summary['alerts_per_window']] == [
        ('2024-05-01', 3), ('2024-05-02', 2)]
    assert summary['dead_letter_reasons'] == [{'reason': 'not JSON', 'count': 12}, {'reason': IMG, 'count': 8}]
    rarest = summary['rarest_fingerprints']
    assert [f['Prevalence'] for f in rarest] == [1.25, 2.5, 10.0]
    assert rarest[0]['PowershellScriptCommands'] == ['Invoke-Mimikatz', IMG]
    assert summary['alert_files'] == [str(output_dir / 'alerts-00000-of-00001.jsonl')]


def test_top_limits_fingerprints(output_dir):
    summary = build_summary(COUNTERS, [str(output_dir / 'alerts-*.jsonl')], top=1)
    assert [f['ScriptFingerprintHash'][-1] for f in summary['rarest_fingerprints']] == ['2']


class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_strings_are_escaped(output_dir):
    page = render_html(build_summary(COUNTERS, [str(output_dir / 'alerts-*.jsonl')]))
    assert SCRIPT not in page and IMG not in page and '<img' not in page
    parsed = _Elements()
    parsed.feed(page)
    assert 'script' not in parsed.tags and 'img' not in parsed.tags
    assert 'onerror' not in parsed.attributes
    text = ''.join(parsed.text)
    assert SCRIPT in text and IMG in text  # shown to the analyst as text, verbatim


def _dump_dom(path):
    profile = tempfile.mkdtemp()
    try:
        completed = subprocess.run(
            [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--user-data-dir=' + profile, '--dump-dom', 'file://' + str(path)],
            capture_output=True, timeout=60, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if completed.returncode != 0 or not completed.stdout:
        pytest.fail('chromium failed: %s' % completed.stderr.decode('utf-8', 'replace')[-2000:])
    return completed.stdout.decode('utf-8')


class _DomValues(html.parser.HTMLParser):
    """Text of elements by id, count of elements by tag, in Chromium's serialized DOM."""

    def __init__(self):
        super().__init__()
        self.by_id, self.count, self._open, self.title = {}, {}, [], ''
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1
        element_id = dict(attrs).get('id')
        self._open.append(element_id)
        if element_id:
            self.by_id[element_id] = ''
        self._in_title = tag == 'title'

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()
        self._in_title = False

    def handle_data(self, data):
        for element_id in self._open:
            if element_id:
                self.by_id[element_id] += data
        if self._in_title and not self.title:
            self.title = data


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (apt-get install -y chromium)')
def test_report_renders_in_headless_chromium(output_dir):
    write_run_report(COUNTERS, str(output_dir), generated_at='2024-05-03T00:00:00+00:00')
    dom = _dump_dom(output_dir / 'report.html')
    values = _DomValues()
    values.feed(dom)
    assert values.title == 'Rare Run Command scripts: run report'  # no injected script renamed the page
    assert values.by_id['alerts-total'] == '5' and values.by_id['alert-windows'] == '2'
    assert values.by_id['DeviceEvents-read'] == '5000' and values.by_id['DeviceEvents-outside_range'] == '4'
    assert values.by_id['detection-sessions'] == '42' and values.by_id['detection-joined_rows'] == '37'
    assert values.count.get('rect') == 2 and values.count.get('img', 0) == 0 and values.count.get('script', 0) == 0
    assert 'data-alerts="3"' in dom and 'data-alerts="2"' in dom
    assert values.by_id['fingerprints'].index('Invoke-Mimikatz') < values.by_id['fingerprints'].index('Get-Date')
    assert SCRIPT in values.by_id['fingerprints']  # rendered as text
    assert IMG in values.by_id['dead-letters'] and '12' in values.by_id['dead-letters']
