"""report.html as a triage page: the alert cards, every evaluated window, the inputs and their dead
letters, hostile strings made visible; its layout checked in headless Chromium at 1400 and 800 px."""

import html.parser
import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy
import pytest

from png_image import read_png
from transforms.detect.alerts import make_alert, query_result
from transforms.detect.rule import load_rule
from transforms.read.sources import DEAD_LETTERS_BY_FILE, INPUT_FILES, file_counter_name
from transforms.write.run_report import CHART_WIDTH, write_run_report

RULE = load_rule()
CHROMIUM = shutil.which('chromium') or (os.path.exists('/usr/bin/chromium') and '/usr/bin/chromium') or None
RLO = '\u202e'   # RIGHT-TO-LEFT OVERRIDE: "alice@contoso.com" + RLO + "gpj.exe" reads "...exe.jpg"
CALLER = 'mallory@contoso.com' + RLO + 'moc.nimda'
LONG_CMDLET = 'INVOKE-' + 'X' * 400
SCOPE = '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/'
DAY0 = 1_709_251_200_000_000   # 2024-03-01T00:00:00Z in microseconds
FIVE_MINUTES = 300_000_000
ACTIVITY = '/exports/AzureActivity/WorkspaceResourceId=/subscriptions/x/y=2024/m=03/d=01/h=00/m=00/PT05M.json'
EVENTS = '/exports/DeviceEvents/part-0001.csv'


def iso(us):
    import datetime  # pylint: disable=import-outside-toplevel
    return (datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=us)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def row(n, cmdlets, prevalence, caller='eve@contoso.com'):
    start = DAY0 + n * FIVE_MINUTES + 30_000_000
    return {'StartTime': start, 'EndTime': start + 45_000_000, 'PowershellFileName': 'script%d.ps1' % n,
            'VirtualMachineName': 'vm-%d' % n, 'Caller': caller, 'CallerIpAddress': '10.0.0.%d' % n,
            'PowershellScriptCommands': cmdlets, 'PowershellFileSize': 100 + n,
            'ScriptFingerprintHash': '%064x' % n, 'Prevalence': prevalence, 'Scope': SCOPE + 'vm-%d' % n}


def window(n):
    return iso(DAY0 + n * FIVE_MINUTES), iso(DAY0 + (n + 1) * FIVE_MINUTES)


ALERTS = [make_alert([query_result(row(3, ['GET-PROCESS', 'INVOKE-WEBREQUEST', 'START-PROCESS'], 50.0, CALLER))],
                     RULE, 'sentinel', *window(3)),
          make_alert([query_result(row(200, ['GET-DATE', LONG_CMDLET] + ['NEW-NETFIREWALLRULE'] * 12, 100.0))],
                     RULE, 'sentinel', *window(200))]
WINDOWS = 288   # one day of 5-minute windows, two with alerts
COUNTERS = {
    'AzureActivity': {'read': 10, 'parsed': 10}, 'DeviceEvents': {'read': 7, 'parsed': 4, 'dead_lettered': 3},
    'detection': {'alerts': 2},
    'alerts_per_window': {'%s/%s' % window(3): 1, '%s/%s' % window(200): 1},
    'dead_letter_reasons': {'not JSON': 1, 'not a DeviceEvents record: none of DeviceName': 2},
    INPUT_FILES: {file_counter_name('AzureActivity', ACTIVITY, 'read'): 10,
                  file_counter_name('AzureActivity', ACTIVITY, 'parsed'): 10,
                  file_counter_name('AzureActivity', ACTIVITY, 'format:jsonl'): 1,
                  file_counter_name('DeviceEvents', EVENTS, 'read'): 7,
                  file_counter_name('DeviceEvents', EVENTS, 'parsed'): 4,
                  file_counter_name('DeviceEvents', EVENTS, 'format:csv'): 2},
    DEAD_LETTERS_BY_FILE: {file_counter_name('DeviceEvents', EVENTS, 'not JSON'): 1,
                           file_counter_name('DeviceEvents', EVENTS, 'not a DeviceEvents record: none of DeviceName'): 2},
}
LISTING = [('AzureActivity', ACTIVITY, 2048), ('DeviceEvents', EVENTS, 4096),
           ('DeviceFileEvents', '/exports/DeviceFileEvents/empty.json', 0)]


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """(output folder, summary) of a run with two alerts among a day of 5-minute windows."""
    folder = tmp_path_factory.mktemp('report')
    (folder / 'alerts-00000-of-00001.jsonl').write_text(''.join(json.dumps(a) + '\n' for a in ALERTS))
    (folder / 'windows-00000-of-00001.jsonl').write_text(''.join(
        json.dumps({'QueryPeriodStart': window(n)[0], 'QueryPeriodEnd': window(n)[1], 'AzureActivity': 1,
                    'DeviceEvents': n % 3, 'DeviceFileEvents': 0, 'alerts': int(n in (3, 200))}) + '\n'
        for n in range(WINDOWS)))
    dead = [{'table': 'DeviceEvents', 'source': EVENTS, 'line': 2, 'offset': 40, 'reason': 'not JSON',
             'raw': 'garbage' + RLO + 'txt'}]
    dead += [{'table': 'DeviceEvents', 'source': EVENTS, 'line': 3 + n, 'offset': 90 + n,
              'reason': 'not a DeviceEvents record: none of DeviceName', 'raw': '{"Caller": "c%d"}' % n}
             for n in range(2)]
    (folder / 'dead_letter-00000-of-00001.jsonl').write_text(''.join(json.dumps(d) + '\n' for d in dead))
    stored = {'%064x' % 200: {'fingerprint': '%064x' % 200, 'first_seen': '2024-02-01T10:00:00Z',
                              'last_seen': '2024-02-20T10:00:00Z', 'count': 4}}
    summary = write_run_report(COUNTERS, str(folder), generated_at='2024-03-02T00:00:00+00:00', inputs=LISTING,
                               options={'query_period': '5m', 'output_dir': str(folder)},
                               stored_fingerprints=stored)
    return folder, summary


def test_summary_lists_every_input_file_with_its_accounting(report):
    _, summary = report
    by_file = {f['file']: f for f in summary['inputs']}
    assert by_file[EVENTS] == {'table': 'DeviceEvents', 'file': EVENTS, 'format': 'csv', 'bytes': 4096, 'read': 7,
                               'parsed': 4, 'dead_lettered': 3, 'skipped_irrelevant': 0, 'outside_range': 0}
    assert by_file[ACTIVITY]['format'] == 'jsonl' and by_file[ACTIVITY]['bytes'] == 2048
    assert by_file['/exports/DeviceFileEvents/empty.json']['read'] == 0   # listed though nothing was read
    assert summary['options'] == {'output_dir': summary['options']['output_dir'], 'query_period': '5m'}


def test_dead_letters_per_file_and_reason_with_samples(report):
    _, summary = report
    groups = summary['dead_letters_by_file']
    assert [(g['reason'], g['count'], len(g['samples'])) for g in groups] == [
        ('not a DeviceEvents record: none of DeviceName', 2, 2), ('not JSON', 1, 1)]
    assert groups[1]['samples'] == [{'position': {'line': 2, 'offset': 40}, 'raw': 'garbage' + RLO + 'txt'}]


def test_every_evaluated_window_is_in_the_summary_and_the_chart(report):
    folder, summary = report
    assert len(summary['windows']) == WINDOWS and sum(w['alerts'] for w in summary['windows']) == 2
    page = (folder / 'report.html').read_text(encoding='utf-8')
    chart = page[page.index('<svg id="alerts-chart"'):page.index('</svg>')]
    assert chart.count('<rect ') == WINDOWS and chart.count('class="bar"') == 2
    labels = [float(x) for x in re.findall(r'<text class="axis-label" x="([0-9.]+)"', chart)]
    assert 3 <= len(labels) <= CHART_WIDTH // 120 + 1 and all(b - a >= 80 for a, b in zip(labels, labels[1:]))
    # 288 windows fold to the first, the last and those with alerts
    table = page[page.index('<table id="windows">'):]
    assert table[:table.index('</table>')].count('<tr>') == 1 + 4 and '284 windows without alerts' in page


class _Cards(html.parser.HTMLParser):
    """{card id: {field: text}} and the cmdlets of each card."""

    def __init__(self):
        super().__init__()
        self.cards, self._card, self._field, self._depth = {}, None, None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'article':
            self._card = attrs['id']
            self.cards[self._card] = {'cmdlets': []}
        elif self._card and tag == 'dd':
            self._field = attrs['class']
            self.cards[self._card][self._field] = ''
        elif self._card and tag == 'code' and self._field is None:
            self._field = 'cmdlet'
            self.cards[self._card]['cmdlets'].append('')

    def handle_endtag(self, tag):
        if tag == 'article':
            self._card = None
        if tag in ('dd', 'code') and self._field in ('cmdlet',) + (() if tag == 'code' else (self._field,)):
            self._field = None

    def handle_data(self, data):
        if self._card and self._field == 'cmdlet':
            self.cards[self._card]['cmdlets'][-1] += data
        elif self._card and self._field:
            self.cards[self._card][self._field] += data


def test_one_card_per_alert_with_the_sessions_own_times(report):
    folder, _ = report
    cards = _Cards()
    cards.feed((folder / 'report.html').read_text(encoding='utf-8'))
    assert sorted(cards.cards) == ['alert-0', 'alert-1']
    first = cards.cards['alert-0']   # the rarest first
    assert first['session'] == '%s \u2192 %s' % (iso(DAY0 + 3 * FIVE_MINUTES + 30_000_000),
                                                iso(DAY0 + 3 * FIVE_MINUTES + 75_000_000))
    assert first['session'] != first['window'] and first['window'].startswith(window(3)[0])
    assert first['caller'] == 'mallory@contoso.com\\u202emoc.nimdafrom 10.0.0.3'
    assert first['VM'] == 'vm-3' and first['subscription'] == '11111111-2222-3333-4444-555555555555'
    assert first['script'] == 'script3.ps1, 103 bytes' and first['prevalence'] == '50 %'
    assert first['baseline'] == 'not in the baseline: first seen in this run'
    assert first['cmdlets'] == ['GET-PROCESS', 'INVOKE-WEBREQUEST', 'START-PROCESS']
    second = cards.cards['alert-1']
    assert second['baseline'] == 'seen before: first 2024-02-01T10:00:00Z, last 2024-02-20T10:00:00Z, 4 times'
    assert second['cmdlets'][:2] == ['GET-DATE', LONG_CMDLET]


def test_direction_overrides_are_shown_not_obeyed(report):
    folder, summary = report
    page = (folder / 'report.html').read_text(encoding='utf-8')
    assert RLO not in page
    assert '<mark class="hidden-char" title="hidden or reordering character">\\u202e</mark>' in page
    assert summary['alerts'][0]['Caller'] == CALLER   # summary.json keeps the data as it is


# ------------------------------------------------------------------------------- headless Chromium

# Run in a copy of the page without its Content-Security-Policy: every element that reaches past the
# viewport or whose content overflows its box, every short cmdlet broken over two lines, every pair of
# overlapping axis labels.
LAYOUT_PROBE = """<script>
(function () {
  var faults = [], width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) faults.push('page wider than the viewport');
  document.querySelectorAll('body *').forEach(function (el) {
    var box = el.getBoundingClientRect(), name = el.tagName + '#' + el.id + '.' + el.getAttribute('class');
    if (box.width && box.right > width + 0.5) faults.push('past the right edge: ' + name);
    if (!(el instanceof SVGElement) && getComputedStyle(el).display !== 'inline' && el.clientWidth > 0
        && el.scrollWidth > el.clientWidth + 1) faults.push('content overflows: ' + name);
  });
  document.querySelectorAll('ul.cmdlets code:not(.long)').forEach(function (el) {
    if (el.getClientRects().length !== 1 || el.getBoundingClientRect().height > 1.6 * parseFloat(
        getComputedStyle(el).fontSize) * 1.45) faults.push('cmdlet broken: ' + el.textContent);
  });
  var labels = Array.prototype.map.call(document.querySelectorAll('text.axis-label'),
                                        function (el) { return el.getBoundingClientRect(); });
  for (var i = 1; i < labels.length; i++) if (labels[i].left < labels[i - 1].right + 4) faults.push('labels overlap');
  document.body.setAttribute('data-layout-faults', JSON.stringify(faults));
  document.body.setAttribute('data-labels', String(labels.length));
})();
</script>"""


def _chromium(*arguments):
    profile = tempfile.mkdtemp()
    try:
        completed = subprocess.run(
            [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--user-data-dir=' + profile] + list(arguments), capture_output=True, timeout=90, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if completed.returncode != 0:
        pytest.fail('chromium failed: %s' % completed.stderr.decode('utf-8', 'replace')[-2000:])
    return completed.stdout.decode('utf-8')


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (apt-get install -y chromium)')
@pytest.mark.parametrize('width', [1400, 800])
def test_layout_in_headless_chromium(report, tmp_path, width):
    folder, _ = report
    page = (folder / 'report.html').read_text(encoding='utf-8')
    probed = tmp_path / 'probed.html'
    probed.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', '', page)
                      .replace('</body>', LAYOUT_PROBE + '</body>'), encoding='utf-8')
    dom = _chromium('--window-size=%d,1000' % width, '--dump-dom', 'file://' + str(probed))
    faults = json.loads(html.unescape(re.search(r'data-layout-faults="([^"]*)"', dom).group(1)))
    assert faults == []
    assert int(re.search(r'data-labels="(\d+)"', dom).group(1)) >= 3

    # The screenshot of the page itself: nothing reaches the right edge (the body keeps a 16 px margin
    # there, so a non-white pixel in it is something overflowing), and the cards are drawn (their red edge).
    shot = tmp_path / 'report.png'
    _chromium('--window-size=%d,1000' % width, '--screenshot=' + str(shot), 'file://' + str(folder / 'report.html'))
    pixels = read_png(shot)[:, :, :3].astype(int)
    assert pixels.shape[:2] == (1000, width)
    assert (pixels[:, -8:] >= 250).all(), 'something is drawn in the right margin'
    red = (abs(pixels[:, :, 0] - 0xcf) < 8) & (abs(pixels[:, :, 1] - 0x22) < 8) & (abs(pixels[:, :, 2] - 0x2e) < 8)
    assert red.sum() > 500
    assert numpy.count_nonzero((pixels < 200).any(axis=2)) > 10_000   # text was rendered
