"""The run report: ``summary.json`` and a self-contained ``report.html`` under the output folder.

Both are built after the pipeline has finished, from its Beam counters (``{namespace: {name: value}}``
as returned by ``pipelines.rare_runcommand.counters``), from the files the run wrote (alerts, window
summary, dead letters) and from the launcher's listing of the input files. The page is a triage
page: one card per alert, every evaluated window in a chart, the inputs and what became of their
records, the dead letters per file and reason with samples. It needs no network: inline CSS and
SVG, no script, and a Content-Security-Policy that forbids any script and any fetch. Every string
that comes from the data (cmdlets, file names, callers, dead-letter reasons, paths) is HTML-escaped,
and the characters that could hide or reorder text (direction overrides, zero-width and control
characters) are shown as visible escapes: they are attacker-controlled.
"""

import datetime
import heapq
import html
import json
import re

from apache_beam.io.filesystems import FileSystems

from transforms.detect.alerts import ALERTS_PER_WINDOW
from transforms.read.dynamic import canonical_json
from transforms.read.schema import TABLES
from transforms.read.sources import DEAD_LETTERS_BY_FILE, INPUT_FILES, parse_file_counter_name
from transforms.write.sinks import DEAD_LETTER_REASONS

TABLE_COUNTERS = ('read', 'parsed', 'dead_lettered', 'skipped_irrelevant', 'outside_range')
DETECTION_COUNTERS = ('sessions', 'joined_rows', 'scripts', 'run_command_data', 'alerts')
TOP_FINGERPRINTS = 20
MAX_ALERT_CARDS = 200
DEAD_LETTER_SAMPLES = 3
SAMPLE_CHARS = 300
# Dead-letter records scanned for samples: enough for every reason of an ordinary run, bounded for a
# run that dead-lettered millions.
MAX_DEAD_LETTERS_SCANNED = 200_000
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


def input_files(counters, listing=()):
    """One record per input file: its table, path, size, detected format and what became of its records.

    `listing`: ``(table, path, bytes)`` of every file the patterns matched (a file the run found no
    record in is listed too); the counts come from the read step's per-file counters."""
    files = {}
    for table, path, size in listing:
        files[(table, path)] = {'table': table, 'file': path, 'format': '', 'bytes': size}
    for name, value in counters.get(INPUT_FILES, {}).items():
        table, path, what = parse_file_counter_name(name)
        entry = files.setdefault((table, path), {'table': table, 'file': path, 'format': '', 'bytes': None})
        if what.startswith('format:'):
            formats = set(filter(None, entry['format'].split(','))) | {what[len('format:'):]}
            entry['format'] = ','.join(sorted(formats))
        else:
            entry[what] = entry.get(what, 0) + int(value)
    for name, value in counters.get(DEAD_LETTERS_BY_FILE, {}).items():
        table, path, _ = parse_file_counter_name(name)
        entry = files.setdefault((table, path), {'table': table, 'file': path, 'format': '', 'bytes': None})
        entry['dead_lettered'] = entry.get('dead_lettered', 0) + int(value)
    order = {table: index for index, table in enumerate(TABLES)}
    records = []
    for (table, path), entry in sorted(files.items(), key=lambda item: (order.get(item[0][0], 9), item[0][1])):
        records.append(dict(entry, **{name: int(entry.get(name, 0)) for name in TABLE_COUNTERS}))
    return records


def dead_letters_by_file(counters, dead_letter_records=(), samples=DEAD_LETTER_SAMPLES):
    """Dead letters per (table, file, reason), most first, each with up to `samples` examples
    (position and the start of the raw record) from `dead_letter_records`."""
    groups = {}
    for name, value in counters.get(DEAD_LETTERS_BY_FILE, {}).items():
        table, path, reason = parse_file_counter_name(name)
        groups[(table, path, reason)] = {'table': table, 'file': path, 'reason': reason, 'count': int(value),
                                         'samples': []}
    for scanned, record in enumerate(dead_letter_records):
        if scanned >= MAX_DEAD_LETTERS_SCANNED:
            break
        key = (record.get('table'), record.get('source'), str(record.get('reason', '')).replace('\t', ' '))
        group = groups.get(key)
        if group is None or len(group['samples']) >= samples:
            continue
        position = {k: v for k, v in record.items() if k not in ('table', 'source', 'reason', 'raw')}
        group['samples'].append({'position': position, 'raw': str(record.get('raw') or '')[:SAMPLE_CHARS]})
    return sorted(groups.values(), key=lambda g: (-g['count'], g['table'], g['file'], g['reason']))


def read_json_records(paths):
    """Records of JSON-lines files, one by one."""
    for path in paths:
        with FileSystems.open(path, compression_type='uncompressed') as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def evaluated_windows(window_records):
    """Every evaluated window, in time order: start, end, rows per table, alerts."""
    windows = []
    for record in window_records:
        windows.append({'window_start': record['QueryPeriodStart'], 'window_end': record['QueryPeriodEnd'],
                        'rows': {table: int(record.get(table, 0)) for table in TABLES},
                        'alerts': int(record.get('alerts', 0))})
    return sorted(windows, key=lambda w: (w['window_start'], w['window_end']))


_SUBSCRIPTION = re.compile(r'/subscriptions/([^/]+)', re.IGNORECASE)


def alert_cards(alerts, stored_fingerprints=None, limit=MAX_ALERT_CARDS):
    """(cards, total): one triage record per alert row, the rarest first, at most `limit`.

    `stored_fingerprints`: {fingerprint: store record} of the history baseline read by the run, or
    None when it read none (then the baseline is "not checked")."""
    cards = []
    for alert in alerts:
        for row in _result_rows(alert):
            fingerprint = row.get('ScriptFingerprintHash') or ''
            match = _SUBSCRIPTION.search(str(row.get('Scope') or ''))
            if stored_fingerprints is None:
                seen = {'status': 'not checked'}
            elif fingerprint in stored_fingerprints:
                stored = stored_fingerprints[fingerprint]
                seen = {'status': 'seen before', 'first_seen': stored.get('first_seen'),
                        'last_seen': stored.get('last_seen'), 'count': stored.get('count')}
            else:
                seen = {'status': 'not in the baseline'}
            cards.append({
                'SystemAlertId': alert.get('SystemAlertId'),
                'window_start': alert.get('QueryPeriodStart'), 'window_end': alert.get('QueryPeriodEnd'),
                'session_start': row.get('StartTime'), 'session_end': row.get('EndTime'),
                'Caller': row.get('Caller'), 'CallerIpAddress': row.get('CallerIpAddress'),
                'VirtualMachineName': row.get('VirtualMachineName'),
                'subscription': match.group(1) if match else '', 'Scope': row.get('Scope'),
                'PowershellFileName': row.get('PowershellFileName'), 'PowershellFileSize': row.get('PowershellFileSize'),
                'PowershellScriptCommands': list(row.get('PowershellScriptCommands') or ()),
                'Prevalence': row.get('Prevalence'), 'ScriptFingerprintHash': fingerprint, 'baseline': seen})
    cards.sort(key=lambda c: (c['Prevalence'] if c['Prevalence'] is not None else float('inf'),
                              str(c['session_start']), str(c['VirtualMachineName']), c['ScriptFingerprintHash']))
    return cards[:limit], len(cards)


def build_summary(counters, alert_files=(), top=TOP_FINGERPRINTS, generated_at=None, published_dir=None,
                  inputs=(), options=None, window_files=(), dead_letter_files=(), stored_fingerprints=None):
    """The report's data: counters per table and stage, every input file, every evaluated window,
    the alerts to triage, dead letters per file and reason, rarest fingerprints, the run's options.

    `published_dir`: the folder the alert files will be in once the run's outputs are swapped in
    (they are read where they are, and listed under that folder). `inputs`: ``(table, path, bytes)``
    of every input file. `window_files`, `dead_letter_files`: patterns of the run's window summary
    and JSON-lines dead letters. `stored_fingerprints`: see `alert_cards`.
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
    cards, total = alert_cards(read_alerts(paths), stored_fingerprints)
    return {
        'generated_at': generated_at or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'tables': tables,
        'detection': detection,
        'alerts_per_window': windows,
        'dead_letter_reasons': [{'reason': reason, 'count': int(count)} for reason, count in reasons],
        'sentinel': {name: int(value) for name, value in sorted(counters.get('sentinel', {}).items())},
        'rarest_fingerprints': rarest_fingerprints(read_alerts(paths), top),
        'alerts': cards,
        'alerts_total': total,
        'windows': evaluated_windows(read_json_records(_match(window_files))),
        'inputs': input_files(counters, inputs),
        'dead_letters_by_file': dead_letters_by_file(counters, read_json_records(_match(dead_letter_files))),
        'options': dict(sorted((options or {}).items())),
        'alert_files': ([FileSystems.join(published_dir, path.rstrip('/').rsplit('/', 1)[-1]) for path in paths]
                        if published_dir else paths),
        'counters': {ns: dict(sorted(values.items())) for ns, values in sorted(counters.items())},
    }


# --- HTML -----------------------------------------------------------------------------------------

# Characters that reorder or hide text (bidirectional embeddings, overrides and isolates, marks,
# zero-width characters), and control characters: shown as visible ``\uXXXX`` escapes.
_HIDDEN = re.compile('[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069'
                     '\ufeff\ufff9-\ufffb]')


def _visible(match):
    return '\\u%04x' % ord(match.group(0))


def visible(value):
    """Text of any value with characters that could hide or reorder it shown as ``\\uXXXX`` escapes
    (for the page and for a terminal, where control characters are escape sequences)."""
    return _HIDDEN.sub(_visible, '' if value is None else str(value))


def esc(value):
    """Text of any value, safe in HTML element content and in quoted attribute values, with characters
    that could hide or reorder it shown as ``\\uXXXX`` escapes."""
    text = '' if value is None else str(value)
    return html.escape(_HIDDEN.sub(_visible, text), quote=True)


def esc_marked(value):
    """`esc`, with each escaped hidden character marked so that it stands out on the page."""
    text = '' if value is None else str(value)
    parts, last = [], 0
    for match in _HIDDEN.finditer(text):
        parts.append(html.escape(text[last:match.start()], quote=True))
        parts.append('<mark class="hidden-char" title="hidden or reordering character">%s</mark>' % _visible(match))
        last = match.end()
    parts.append(html.escape(text[last:], quote=True))
    return ''.join(parts)


_STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1200px;color:#1b1f24;
padding:0 16px;overflow-wrap:break-word}
h1{font-size:1.45em;margin:.2em 0}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #d0d7de;
padding-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0;width:100%;font-size:13px}th,td{border:1px solid #d0d7de;
padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f6f8fa;overflow-wrap:normal}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f6f8fa;padding:0 .25em;border-radius:3px;
overflow-wrap:anywhere}
.muted{color:#57606a}.totals{display:flex;flex-wrap:wrap;gap:.5em 1.5em;margin:.5em 0}
.totals b{font-size:1.2em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-left:4px solid #cf222e;border-radius:6px;padding:10px 12px;min-width:0}
.card h3{margin:0 0 .4em;font-size:1.05em}
.card dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 10px;margin:0}
.card dt{color:#57606a}.card dd{margin:0;min-width:0}
ul.cmdlets{list-style:none;margin:.4em 0 0;padding:0;display:flex;flex-wrap:wrap;gap:4px}
ul.cmdlets li{max-width:100%}ul.cmdlets code{display:inline-block;max-width:100%;white-space:nowrap}
ul.cmdlets code.long{white-space:normal;overflow-wrap:anywhere}
mark.hidden-char{background:#ffebe9;color:#cf222e;font-weight:600}
.chart{width:100%;height:auto;max-width:900px;display:block}
svg text{font:12px system-ui,sans-serif;fill:#1b1f24}svg rect.bar{fill:#cf222e}svg rect.zero{fill:#8c959f}
pre.raw{white-space:pre-wrap;overflow-wrap:anywhere;margin:.2em 0;font:12px ui-monospace,Menlo,Consolas,monospace;
background:#f6f8fa;padding:2px 4px}
"""

# Commands longer than this may wrap anywhere (an attacker's 10 kB "cmdlet" must not widen the page);
# shorter ones never break inside, not even at their hyphen.
_LONG_CMDLET = 48
CHART_WIDTH, CHART_HEIGHT = 760, 240


def _chart(windows, width=CHART_WIDTH, height=CHART_HEIGHT):
    """An inline SVG bar chart of every evaluated window: a bar per window with alerts, a grey stub
    per window without; a few window starts under the axis, spaced so that they never overlap."""
    if not windows:
        return '<p class="muted" id="chart-empty">No window was evaluated.</p>'
    left, right, bottom, top = 36, 12, 40, 14
    plot_w, plot_h = width - left - right, height - bottom - top
    peak = max(w['alerts'] for w in windows) or 1
    step = plot_w / len(windows)
    bar_w = min(40.0, max(1.0, step * 0.8))
    base = top + plot_h
    parts = ['<svg id="alerts-chart" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" '
             'role="img" aria-label="Alerts per evaluated window">' % (width, height),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#57606a"/>' % (left, base, width - right, base),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d0d7de" stroke-dasharray="3 3"/>'
             % (left, top, width - right, top),
             '<text x="%d" y="%d" text-anchor="end">%d</text>' % (left - 6, top + 4, peak),
             '<text x="%d" y="%d" text-anchor="end">0</text>' % (left - 6, base + 4)]
    for index, window in enumerate(windows):
        x = left + index * step + (step - bar_w) / 2
        if window['alerts']:
            h = max(2.0, plot_h * window['alerts'] / peak)
            css = 'bar'
        else:
            h, css = 2.0, 'zero'
        parts.append('<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" data-alerts="%d">'
                     '<title>%s \u2013 %s: %d alerts</title></rect>'
                     % (css, x, base - h, bar_w, h, window['alerts'], esc(window['window_start']),
                        esc(window['window_end']), window['alerts']))
    # Labels: "MM-DD HH:MM" (about 75 units wide) or "HH:MM", one every 120 units of axis at most, so
    # that they never overlap; the first and last are kept inside the chart.
    same_day = len({w['window_start'][:10] for w in windows}) == 1
    label_every = max(1, -(-120 * len(windows) // plot_w))
    for index in range(0, len(windows), label_every):
        start = windows[index]['window_start']
        text = start[11:16] if same_day else '%s %s' % (start[5:10], start[11:16])
        cx = left + (index + 0.5) * step
        anchor, lx = 'middle', cx
        if cx - 40 < left:
            anchor, lx = 'start', left
        elif cx + 40 > width - right:
            anchor, lx = 'end', width - right
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#57606a"/>' % (cx, base, cx, base + 4))
        parts.append('<text class="axis-label" x="%.1f" y="%d" text-anchor="%s">%s</text>'
                     % (lx, base + 18, anchor, esc(text)))
    if same_day:
        parts.append('<text x="%d" y="%d">%s (UTC)</text>' % (left, base + 34, esc(windows[0]['window_start'][:10])))
    else:
        parts.append('<text x="%d" y="%d">window start (UTC)</text>' % (left, base + 34))
    parts.append('</svg>')
    return ''.join(parts)


def _rows(cells_list):
    return ''.join('<tr>%s</tr>' % ''.join(cells) for cells in cells_list)


def _cmdlets(commands):
    items = []
    for command in commands:
        css = ' class="long"' if len(str(command)) > _LONG_CMDLET else ''
        items.append('<li><code%s>%s</code></li>' % (css, esc_marked(command)))
    return '<ul class="cmdlets">%s</ul>' % ''.join(items)


def _baseline_text(seen):
    if seen['status'] == 'seen before':
        return 'seen before: first %s, last %s, %s times' % (seen.get('first_seen'), seen.get('last_seen'),
                                                             seen.get('count'))
    if seen['status'] == 'not checked':
        return 'not checked (no --baseline_in)'
    return 'not in the baseline: first seen in this run'


def _card(index, card):
    size = card['PowershellFileSize']
    prevalence = '' if card['Prevalence'] is None else '%.4g %%' % card['Prevalence']
    fields = [
        ('session', '%s \u2192 %s' % (esc(card['session_start']), esc(card['session_end']))),
        ('caller', '%s<br><span class="muted">from</span> %s' % (esc_marked(card['Caller']),
                                                                 esc_marked(card['CallerIpAddress']))),
        ('VM', esc_marked(card['VirtualMachineName'])),
        ('subscription', '<code>%s</code>' % esc_marked(card['subscription'])),
        ('script', '%s, %s' % (esc_marked(card['PowershellFileName']),
                               'size unknown' if size is None else '%s bytes' % esc(size))),
        ('prevalence', esc(prevalence)),
        ('baseline', esc(_baseline_text(card['baseline']))),
        ('fingerprint', '<code>%s</code>' % esc(card['ScriptFingerprintHash'])),
        ('window', '%s \u2013 %s' % (esc(card['window_start']), esc(card['window_end']))),
    ]
    return ('<article class="card" id="alert-%d"><h3>%s on %s</h3><dl>%s</dl>%s</article>' % (
        index, esc_marked(card['PowershellFileName']), esc_marked(card['VirtualMachineName']),
        ''.join('<dt>%s</dt><dd class="%s">%s</dd>' % (name, name, value) for name, value in fields),
        _cmdlets(card['PowershellScriptCommands'])))


def _folded_windows(windows):
    """The windows worth a row: the first, the last and those with alerts."""
    if len(windows) <= 12:
        return windows, 0
    keep = [w for i, w in enumerate(windows) if w['alerts'] or i in (0, len(windows) - 1)]
    return keep, len(windows) - len(keep)


def _windows_section(summary):
    windows = summary.get('windows') or [
        dict(w, rows={}) for w in summary['alerts_per_window']]  # without a window summary: the alerts' windows
    shown, folded = _folded_windows(windows)
    header = '<tr><th>window start</th><th>window end</th>%s<th>alerts</th></tr>' % ''.join(
        '<th>%s rows</th>' % esc(table) for table in TABLES)
    body = _rows(['<td>%s</td>' % esc(w['window_start']), '<td>%s</td>' % esc(w['window_end'])]
                 + ['<td class="n">%s</td>' % esc(w['rows'].get(table, '')) for table in TABLES]
                 + ['<td class="n">%d</td>' % w['alerts']] for w in shown)
    note = ('<p class="muted" id="windows-folded">%d windows without alerts between those listed.</p>' % folded
            if folded else '')
    return ''.join(['<h2>Windows</h2>',
                    '<p class="muted">Windows evaluated: <span id="windows-evaluated">%d</span>, with alerts: '
                    '<span id="windows-with-alerts">%d</span>.</p>'
                    % (len(windows), sum(1 for w in windows if w['alerts'])),
                    _chart(windows), '<table id="windows">%s%s</table>' % (header, body), note])


INPUT_COLUMNS = (('read', 'read'), ('parsed', 'parsed'), ('dead_lettered', 'dead letters'),
                 ('skipped_irrelevant', 'skipped'), ('outside_range', 'outside range'))


def _inputs_section(summary):
    inputs = summary.get('inputs') or []
    if not inputs:
        return '<h2>Inputs</h2><p class="muted" id="inputs-empty">No input file listed.</p>'
    body = _rows(['<td>%s</td>' % esc(f['table']), '<td><code>%s</code></td>' % esc_marked(f['file']),
                  '<td>%s</td>' % esc(f['format'] or '\u2013'),
                  '<td class="n">%s</td>' % ('' if f['bytes'] is None else '{:,}'.format(f['bytes']))]
                 + ['<td class="n">{:,}</td>'.format(f[name]) for name, _ in INPUT_COLUMNS] for f in inputs)
    header = '<tr><th>table</th><th>file</th><th>format</th><th>bytes</th>%s</tr>' % ''.join(
        '<th>%s</th>' % esc(label) for _, label in INPUT_COLUMNS)
    return '<h2>Inputs</h2><table id="inputs">%s%s</table>' % (header, body)


def _dead_letter_section(summary):
    groups = summary.get('dead_letters_by_file') or []
    if groups:
        body = _rows(['<td>%s</td>' % esc(g['table']), '<td><code>%s</code></td>' % esc_marked(g['file']),
                      '<td>%s</td>' % esc_marked(g['reason']), '<td class="n">{:,}</td>'.format(g['count']),
                      '<td>%s</td>' % ''.join(
                          '<pre class="raw">%s%s</pre>' % (
                              esc(', '.join('%s %s' % (k, v) for k, v in sample['position'].items()) + ': '
                                  if sample['position'] else ''), esc_marked(sample['raw']))
                          for sample in g['samples'])] for g in groups)
        per_file = ('<table id="dead-letters-by-file"><tr><th>table</th><th>file</th><th>reason</th><th>records</th>'
                    '<th>samples</th></tr>%s</table>' % body)
    else:
        per_file = ''
    reasons = _rows(['<td>%s</td>' % esc_marked(r['reason']), '<td class="n">%d</td>' % r['count']]
                    for r in summary['dead_letter_reasons'])
    overall = ('<table id="dead-letters"><tr><th>reason</th><th>records</th></tr>%s</table>' % reasons if reasons
               else '<p class="muted" id="dead-letters-empty">No dead letters.</p>')
    return '<h2>Dead letters</h2>' + overall + per_file


def render_html(summary):
    """The self-contained report page."""
    detection = summary['detection']
    table_rows = _rows(
        ['<td>%s</td>' % esc(table)] + ['<td class="n" id="%s">%d</td>' % (esc('%s-%s' % (table, name)), value)
                                        for name, value in values.items()]
        for table, values in summary['tables'].items())
    detection_rows = _rows(['<td>%s</td>' % esc(name), '<td class="n" id="detection-%s">%d</td>' % (esc(name), value)]
                           for name, value in detection.items())
    fingerprints = _rows(
        ['<td><code>%s</code></td>' % esc(f['ScriptFingerprintHash']),
         '<td class="n">%s</td>' % esc('' if f['Prevalence'] is None else '%.4g' % f['Prevalence']),
         '<td class="n">%d</td>' % f['alerts'],
         '<td>%s</td>' % _cmdlets(f['PowershellScriptCommands']),
         '<td>%s<br><span class="muted">%s on %s by %s</span></td>' % (
             esc_marked(f['PowershellFileName']), esc(f['QueryPeriodStart']), esc_marked(f['VirtualMachineName']),
             esc_marked(f['Caller']))]
        for f in summary['rarest_fingerprints'])
    sentinel = ''
    if summary.get('sentinel'):
        sentinel = ('<h2>Sentinel (Logs Ingestion API)</h2><table><tr><th>counter</th><th>value</th></tr>%s</table>'
                    % _rows(['<td>%s</td>' % esc(k), '<td class="n" id="sentinel-%s">%d</td>' % (esc(k), v)]
                            for k, v in summary['sentinel'].items()))
    cards = summary.get('alerts') or []
    total = summary.get('alerts_total', len(cards))
    if cards:
        alerts = '<div class="cards" id="alert-cards">%s</div>' % ''.join(_card(i, c) for i, c in enumerate(cards))
        if total > len(cards):
            alerts += ('<p class="muted" id="alerts-more">%d more alerts in the alert files.</p>'
                       % (total - len(cards)))
    else:
        alerts = '<p class="muted" id="alerts-empty">No alert.</p>'
    options = summary.get('options') or {}
    options_rows = _rows(['<td><code>--%s</code></td>' % esc(name), '<td><code>%s</code></td>' % esc_marked(value)]
                         for name, value in options.items())
    header = ''.join('<th>%s</th>' % esc(name) for name in TABLE_COUNTERS)
    windows_with_alerts = len(summary['alerts_per_window'])
    return ''.join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % esc(CSP),
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<title>Rare Run Command scripts: run report</title><style>%s</style></head><body>' % _STYLE,
        '<h1>Rare Run Command PowerShell scripts: run report</h1>',
        '<p class="muted">Generated %s. <span id="alerts-total">%d</span> alerts in '
        '<span id="alert-windows">%d</span> of %d evaluated windows.</p>' % (
            esc(summary['generated_at']), detection['alerts'], windows_with_alerts,
            len(summary.get('windows') or summary['alerts_per_window'])),
        _windows_section(summary),
        '<h2>Alerts</h2>', alerts,
        _inputs_section(summary),
        _dead_letter_section(summary),
        '<h2>Input tables</h2><table id="tables"><tr><th>table</th>%s</tr>%s</table>' % (header, table_rows),
        '<h2>Detection</h2><table id="detection"><tr><th>stage</th><th>rows</th></tr>%s</table>' % detection_rows,
        '<h2>Rarest fingerprints</h2>',
        '<table id="fingerprints"><tr><th>fingerprint</th><th>prevalence %%</th><th>alerts</th><th>cmdlets</th>'
        '<th>script</th></tr>%s</table>' % fingerprints if fingerprints else
        '<p class="muted" id="fingerprints-empty">No alert file to read fingerprints from.</p>',
        sentinel,
        '<h2>Options</h2>',
        '<table id="options"><tr><th>option</th><th>value</th></tr>%s</table>' % options_rows if options_rows else
        '<p class="muted" id="options-empty">Every option at its default.</p>',
        '</body></html>\n'])


def _write(path, text):
    with FileSystems.create(path, mime_type='text/plain') as handle:
        handle.write(text.encode('utf-8'))


def write_run_report(counters, output_dir, alerts_glob=None, top=TOP_FINGERPRINTS, generated_at=None,
                     published_dir=None, inputs=(), options=None, stored_fingerprints=None):
    """Writes ``summary.json`` and ``report.html`` under `output_dir`; returns the summary.

    `alerts_glob`: a pattern or list of patterns of this run's alert files (default: the jsonl and
    avro alert files under `output_dir`). The window summary and the JSON-lines dead letters are read
    under `output_dir`. `published_dir`, `inputs`, `options`, `stored_fingerprints`: see `build_summary`.
    """
    if alerts_glob is None:  # the JSON lines when the run wrote them, else the Avro files (never both)
        alerts_glob = [FileSystems.join(output_dir, 'alerts-*.jsonl')]
        if not _match(alerts_glob):
            alerts_glob = [FileSystems.join(output_dir, 'alerts-*.avro')]
    elif isinstance(alerts_glob, str):
        alerts_glob = [alerts_glob]
    summary = build_summary(counters, alerts_glob, top, generated_at, published_dir, inputs=inputs, options=options,
                            window_files=[FileSystems.join(output_dir, 'windows-*.jsonl')],
                            dead_letter_files=[FileSystems.join(output_dir, 'dead_letter-*.jsonl')],
                            stored_fingerprints=stored_fingerprints)
    _write(FileSystems.join(output_dir, 'report.html'), render_html(summary))
    _write(FileSystems.join(output_dir, 'summary.json'),
           json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=False) + '\n')
    return summary
