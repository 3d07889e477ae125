"""The run report: ``summary.json`` and a self-contained ``report.html`` under the output folder.

Both are built after the pipeline has finished, from its Beam counters (``{namespace: {name: value}}``
as returned by ``pipelines.rare_runcommand.counters``) and from the alert files the run wrote. The
page needs no network: inline CSS and SVG, no script, and a Content-Security-Policy that forbids
any script and any fetch. Every string that comes from the data (cmdlets, file names, callers,
dead-letter reasons, paths) is HTML-escaped: they are attacker-controlled.
"""

import datetime
import heapq
import html
import json

from apache_beam.io.filesystems import FileSystems

from transforms.detect.alerts import ALERTS_PER_WINDOW
from transforms.read.dynamic import canonical_json
from transforms.read.schema import TABLES
from transforms.write.sinks import DEAD_LETTER_REASONS

TABLE_COUNTERS = ('read', 'parsed', 'dead_lettered', 'skipped_irrelevant', 'outside_range')
DETECTION_COUNTERS = ('sessions', 'joined_rows', 'scripts', 'run_command_data', 'alerts')
TOP_FINGERPRINTS = 20
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# --- Data -----------------------------------------------------------------------------------------

def _match(patterns):
    paths = []
    for pattern in patterns:
        try:
            results = FileSystems.match([pattern])
        except Exception:  # pylint: disable=broad-except  # nothing matched / folder absent
            continue
        paths.extend(m.path for r in results for m in r.metadata_list)
    return sorted(set(paths))


def read_alerts(paths):
    """Alerts from alert files (``.jsonl`` or ``.avro``), one by one."""
    for path in paths:
        with FileSystems.open(path, compression_type='uncompressed') as handle:
            if path.endswith('.avro'):
                import fastavro
                yield from fastavro.reader(handle)
            else:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)


def _result_rows(alert):
    if alert.get('QueryResult'):
        return [alert['QueryResult']]
    return list(alert.get('QueryResults') or ())


def _example_order(alert, row):
    """The order in which a fingerprint's examples are chosen: the earliest window, then the row's
    canonical JSON. Not the order the alert files are read in, which depends on the sharding (one
    worker or two give other files), so the report shows the same example whatever the runner."""
    return (str(alert.get('QueryPeriodStart') or ''), canonical_json(row))


def rarest_fingerprints(alerts, top=TOP_FINGERPRINTS):
    """The `top` fingerprints with the lowest Prevalence, each with its cmdlets and where it was seen."""
    found, chosen = {}, {}
    for alert in alerts:
        for row in _result_rows(alert):
            key = row.get('ScriptFingerprintHash') or ''
            prevalence = row.get('Prevalence')
            entry = found.get(key)
            order = _example_order(alert, row)
            if entry is None or order < chosen[key]:
                chosen[key] = order
                example = {
                    'ScriptFingerprintHash': key,
                    'PowershellScriptCommands': list(row.get('PowershellScriptCommands') or ()),
                    'PowershellFileName': row.get('PowershellFileName'),
                    'VirtualMachineName': row.get('VirtualMachineName'), 'Caller': row.get('Caller'),
                    'QueryPeriodStart': alert.get('QueryPeriodStart'), 'QueryPeriodEnd': alert.get('QueryPeriodEnd')}
                if entry is None:
                    entry = found[key] = dict(example, Prevalence=prevalence, alerts=0)
                else:
                    entry.update(example)
            entry['alerts'] += 1
            if prevalence is not None and (entry['Prevalence'] is None or prevalence < entry['Prevalence']):
                entry['Prevalence'] = prevalence
    order = lambda e: (e['Prevalence'] if e['Prevalence'] is not None else float('inf'),  # noqa: E731
                       e['ScriptFingerprintHash'])
    return heapq.nsmallest(top, found.values(), key=order)


def build_summary(counters, alert_files=(), top=TOP_FINGERPRINTS, generated_at=None, published_dir=None):
    """The report's data: counters per table and stage, alerts per window, dead-letter reasons, rarest fingerprints.

    `published_dir`: the folder the alert files will be in once the run's outputs are swapped in
    (they are read where they are, and listed under that folder).
    """
    tables = {}
    for table in TABLES:
        values = counters.get(table, {})
        tables[table] = {name: int(values.get(name, 0)) for name in TABLE_COUNTERS}
    detection = {name: int(counters.get('detection', {}).get(name, 0)) for name in DETECTION_COUNTERS}
    windows = []
    for name, count in sorted(counters.get(ALERTS_PER_WINDOW, {}).items()):
        start, _, end = name.partition('/')
        windows.append({'window_start': start, 'window_end': end, 'alerts': int(count)})
    reasons = sorted(counters.get(DEAD_LETTER_REASONS, {}).items(), key=lambda item: (-item[1], item[0]))
    paths = _match(alert_files)
    return {
        'generated_at': generated_at or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'tables': tables,
        'detection': detection,
        'alerts_per_window': windows,
        'dead_letter_reasons': [{'reason': reason, 'count': int(count)} for reason, count in reasons],
        'sentinel': {name: int(value) for name, value in sorted(counters.get('sentinel', {}).items())},
        'rarest_fingerprints': rarest_fingerprints(read_alerts(paths), top),
        'alert_files': ([FileSystems.join(published_dir, path.rstrip('/').rsplit('/', 1)[-1]) for path in paths]
                        if published_dir else paths),
        'counters': {ns: dict(sorted(values.items())) for ns, values in sorted(counters.items())},
    }


# --- HTML -----------------------------------------------------------------------------------------

def esc(value):
    """Text of any value, safe in HTML element content and in quoted attribute values."""
    return html.escape('' if value is None else str(value), quote=True)


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#1b1f24;
padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0;width:100%}th,td{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f6f8fa;padding:0 .25em;border-radius:3px;
word-break:break-all}ol.cmdlets{margin:0;padding-left:1.4em}.muted{color:#57606a}
svg text{font:11px system-ui,sans-serif;fill:#1b1f24}svg rect.bar{fill:#0969da}
"""


def _chart(windows, width=960, height=320):
    """An inline SVG bar chart of alerts per window."""
    if not windows:
        return '<p class="muted" id="chart-empty">No window raised an alert.</p>'
    left, bottom, top = 40, 110, 20
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(w['alerts'] for w in windows) or 1
    step = plot_w / len(windows)
    bar_w = max(1.0, step * 0.8)
    parts = ['<svg id="alerts-chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" role="img" aria-label="Alerts per window">' % (width, height, width, height),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#57606a"/>' % (left, top + plot_h, width - 10, top + plot_h),
             '<text x="4" y="%d">%d</text>' % (top + 4, peak), '<text x="4" y="%d">0</text>' % (top + plot_h)]
    label_every = max(1, len(windows) // 24)
    for index, window in enumerate(windows):
        h = plot_h * window['alerts'] / peak
        x = left + index * step + (step - bar_w) / 2
        parts.append('<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" data-alerts="%d">'
                     '<title>%s \u2013 %s: %d alerts</title></rect>'
                     % (x, top + plot_h - h, bar_w, h, window['alerts'], esc(window['window_start']),
                        esc(window['window_end']), window['alerts']))
        if len(windows) <= 60:
            parts.append('<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>'
                         % (x + bar_w / 2, top + plot_h - h - 3, window['alerts']))
        if index % label_every == 0:
            lx = x + bar_w / 2
            parts.append('<text x="%.1f" y="%d" transform="rotate(45 %.1f %d)">%s</text>'
                         % (lx, top + plot_h + 12, lx, top + plot_h + 12, esc(window['window_start'][:16])))
    parts.append('</svg>')
    return ''.join(parts)


def _rows(cells_list):
    return ''.join('<tr>%s</tr>' % ''.join(cells) for cells in cells_list)


def render_html(summary):
    """The self-contained report page."""
    detection = summary['detection']
    table_rows = _rows(
        ['<td>%s</td>' % esc(table)] + ['<td class="n" id="%s">%d</td>' % (esc('%s-%s' % (table, name)), value)
                                        for name, value in values.items()]
        for table, values in summary['tables'].items())
    detection_rows = _rows(['<td>%s</td>' % esc(name), '<td class="n" id="detection-%s">%d</td>' % (esc(name), value)]
                           for name, value in detection.items())
    window_rows = _rows(['<td>%s</td>' % esc(w['window_start']), '<td>%s</td>' % esc(w['window_end']),
                         '<td class="n">%d</td>' % w['alerts']] for w in summary['alerts_per_window'])
    fingerprints = _rows(
        ['<td><code>%s</code></td>' % esc(f['ScriptFingerprintHash']),
         '<td class="n">%s</td>' % esc('' if f['Prevalence'] is None else '%.4g' % f['Prevalence']),
         '<td class="n">%d</td>' % f['alerts'],
         '<td><ol class="cmdlets">%s</ol></td>' % ''.join('<li><code>%s</code></li>' % esc(c)
                                                          for c in f['PowershellScriptCommands']),
         '<td>%s<br><span class="muted">%s on %s by %s</span></td>' % (
             esc(f['PowershellFileName']), esc(f['QueryPeriodStart']), esc(f['VirtualMachineName']),
             esc(f['Caller']))]
        for f in summary['rarest_fingerprints'])
    reasons = _rows(['<td>%s</td>' % esc(r['reason']), '<td class="n">%d</td>' % r['count']]
                    for r in summary['dead_letter_reasons'])
    sentinel = ''
    if summary.get('sentinel'):
        sentinel = ('<h2>Sentinel (Logs Ingestion API)</h2><table><tr><th>counter</th><th>value</th></tr>%s</table>'
                    % _rows(['<td>%s</td>' % esc(k), '<td class="n" id="sentinel-%s">%d</td>' % (esc(k), v)]
                            for k, v in summary['sentinel'].items()))
    header = ''.join('<th>%s</th>' % esc(name) for name in TABLE_COUNTERS)
    return ''.join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % esc(CSP),
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<title>Rare Run Command scripts: run report</title><style>%s</style></head><body>' % _STYLE,
        '<h1>Rare Run Command PowerShell scripts: run report</h1>',
        '<p class="muted">Generated %s. <span id="alerts-total">%d</span> alerts in '
        '<span id="alert-windows">%d</span> windows.</p>' % (
            esc(summary['generated_at']), detection['alerts'], len(summary['alerts_per_window'])),
        '<h2>Alerts per window</h2>', _chart(summary['alerts_per_window']),
        '<table id="windows"><tr><th>window start</th><th>window end</th><th>alerts</th></tr>%s</table>' % window_rows,
        '<h2>Input tables</h2><table id="tables"><tr><th>table</th>%s</tr>%s</table>' % (header, table_rows),
        '<h2>Detection</h2><table id="detection"><tr><th>stage</th><th>rows</th></tr>%s</table>' % detection_rows,
        '<h2>Rarest fingerprints</h2>',
        '<table id="fingerprints"><tr><th>fingerprint</th><th>prevalence %%</th><th>alerts</th><th>cmdlets</th>'
        '<th>script</th></tr>%s</table>' % fingerprints if fingerprints else
        '<p class="muted" id="fingerprints-empty">No alert file to read fingerprints from.</p>',
        '<h2>Dead letters</h2>',
        '<table id="dead-letters"><tr><th>reason</th><th>records</th></tr>%s</table>' % reasons if reasons else
        '<p class="muted" id="dead-letters-empty">No dead letters.</p>',
        sentinel,
        '</body></html>\n'])


def _write(path, text):
    with FileSystems.create(path, mime_type='text/plain') as handle:
        handle.write(text.encode('utf-8'))


def write_run_report(counters, output_dir, alerts_glob=None, top=TOP_FINGERPRINTS, generated_at=None,
                     published_dir=None):
    """Writes ``summary.json`` and ``report.html`` under `output_dir`; returns the summary.

    `alerts_glob`: a pattern or list of patterns of this run's alert files (default: the jsonl and
    avro alert files under `output_dir`). `published_dir`: see `build_summary`.
    """
    if alerts_glob is None:  # the JSON lines when the run wrote them, else the Avro files (never both)
        alerts_glob = [FileSystems.join(output_dir, 'alerts-*.jsonl')]
        if not _match(alerts_glob):
            alerts_glob = [FileSystems.join(output_dir, 'alerts-*.avro')]
    elif isinstance(alerts_glob, str):
        alerts_glob = [alerts_glob]
    summary = build_summary(counters, alerts_glob, top, generated_at, published_dir)
    _write(FileSystems.join(output_dir, 'report.html'), render_html(summary))
    _write(FileSystems.join(output_dir, 'summary.json'),
           json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=False) + '\n')
    return summary
