"""The same logical rows written in every export shape give the same typed rows and, through the
whole pipeline, byte-identical alerts (also when the days of a backfill come in different shapes).

The rows come from `tools.generate` (edge mix), with their times cut to milliseconds (the
portal's CSV precision) and, for the two Defender tables, Timestamp = TimeGenerated (the Defender
streaming API has no TimeGenerated: it is read from Timestamp).
"""

import glob
import gzip
import json
import os

import pytest

from tools import generate as generator
from pipelines import rare_runcommand
from tests.test_export_formats import read_file
from capture_files import write_capture
from transforms.detect.relevance import read_filters
from transforms.detect import kql
from transforms.read.formats.activity_log import OBJECT_ID_CLAIM, UPN_CLAIM
from transforms.read.ingest import format_datetime_us, parse_datetime_us
from transforms.detect.relevance import is_relevant
from transforms.read.schema import AZURE_ACTIVITY, COLUMNS, DATETIME, DYNAMIC, LONG, TABLES
from transforms.detect.semantics import Semantics
from pipelines.options import IN_PROCESS_RUNNER

pytestmark = pytest.mark.filterwarnings('ignore')

DAY_US = 86_400_000_000
SHAPES = ('la_export', 'la_export_gz', 'records_rows', 'native_lines', 'native_records', 'avro',
          'csv_portal', 'csv_portal_gz', 'csv_legacy', 'csv_adx', 'pretty', 'pretty_array')


# ----------------------------------------------------------------------------------- logical rows

def _ms_iso(micros):
    text = format_datetime_us(micros - micros % 1000)
    return text[:23] + 'Z'


def logical_rows(directory):
    generator.generate(str(directory), mix='edge', days=4, rows=120, seed=5)
    tables = {}
    for table in TABLES:
        rows = []
        with open(os.path.join(directory, table + '.jsonl'), encoding='utf-8') as handle:
            for line in handle:
                row = json.loads(line)
                micros = parse_datetime_us(row['TimeGenerated']) if isinstance(row.get('TimeGenerated'), str) else None
                if micros is not None:
                    row['TimeGenerated'] = _ms_iso(micros)
                if table != AZURE_ACTIVITY:
                    row['Timestamp'] = row.get('TimeGenerated')
                rows.append(row)
        tables[table] = rows
    return tables


def day_of(row):
    micros = parse_datetime_us(row['TimeGenerated']) if isinstance(row.get('TimeGenerated'), str) else None
    return 0 if micros is None else micros // DAY_US


# -------------------------------------------------------------------------------------- writers

def _write_bytes(path, data, gz=False):
    """Writes `data` to `path` (gzip-compressed to `path`.gz with `gz`); returns the path written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if gz:
        path += '.gz'
        with gzip.GzipFile(path, 'wb', mtime=0) as handle:
            handle.write(data)
    else:
        with open(path, 'wb') as handle:
            handle.write(data)
    return path


def _dump_lines(path, values, gz=False):
    return _write_bytes(path, ''.join(json.dumps(v, ensure_ascii=False) + '\n' for v in values).encode('utf-8'), gz)


def activity_record(row, index):
    auth = row.get('Authorization')
    if isinstance(auth, str):
        try:
            parsed = json.loads(auth)
            if isinstance(parsed, dict) and kql.json_text(parsed) == auth:
                auth = parsed
        except ValueError:
            pass
    claims = {'aud': 'https://management.core.windows.net/', 'ipaddr': row.get('CallerIpAddress')}
    record = {'time': row.get('TimeGenerated'), 'resourceId': '/SUBSCRIPTIONS/X', 'operationName': row.get('OperationNameValue'),
              'category': 'Administrative', 'resultType': row.get('ActivityStatusValue'), 'resultSignature': 'Succeeded.',
              'callerIpAddress': row.get('CallerIpAddress'), 'correlationId': row.get('CorrelationId'),
              'identity': {'authorization': auth, 'claims': claims}, 'level': row.get('Level'),
              'properties': {'statusCode': 'OK'}}
    caller = row.get('Caller')
    if caller is not None:
        if index % 3 == 0:
            record['caller'] = caller
        elif '@' in caller and index % 3 == 1:
            claims[UPN_CLAIM] = caller
        else:
            claims[OBJECT_ID_CLAIM] = caller
    if 'EventDataId' in row:
        if index % 2:
            record['eventDataId'] = row['EventDataId']
        else:
            record['properties']['eventDataId'] = row['EventDataId']
    return record


def defender_record(table, row):
    properties = {k: v for k, v in row.items() if k != 'TimeGenerated'}
    return {'time': '2030-01-01T00:00:00.0000000Z', 'tenantId': 't', 'operationName': 'Publish',
            'category': 'AdvancedHunting-' + table, '_TimeReceivedBySvc': '2030-01-01T00:00:00Z',
            'properties': properties, 'Tenant': 'DefaultTenant'}


def native(table, row, index):
    return activity_record(row, index) if table == AZURE_ACTIVITY else defender_record(table, row)


def _chunks(values, size):
    return [values[i:i + size] for i in range(0, len(values), size)]


def _portal_time(text):
    micros = parse_datetime_us(text) if isinstance(text, str) else None
    if micros is None or micros % 1000:
        return '' if text is None else str(text)
    iso = format_datetime_us(micros)
    year, month, day = int(iso[0:4]), int(iso[5:7]), int(iso[8:10])
    hour, rest = int(iso[11:13]), iso[13:23]
    half = 'PM' if hour >= 12 else 'AM'
    return '%d/%d/%d, %d%s %s' % (month, day, year, hour % 12 or 12, rest, half)


def _csv_value(table, column, value, portal):
    kind = COLUMNS[table].get(column)
    if value is None:
        return ''
    if kind == DATETIME:
        return _portal_time(value) if portal else (value if isinstance(value, str) else json.dumps(value))
    if kind == LONG:
        return value if isinstance(value, str) else kql.json_text(value)
    if kind == DYNAMIC:
        if isinstance(value, str):
            return value
        if isinstance(value, (dict, list)) and portal:
            return json.dumps(value, indent=2, ensure_ascii=False).replace('\n', '\r\n')
        return kql.json_text(value)
    return value if isinstance(value, str) else kql.json_text(value)


def _csv_cell(text):
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def write_csv(path, table, rows, portal=True, legacy=False, gz=False):
    columns = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    if legacy:
        columns = ['OperationName', 'ActivityStatus', 'Properties'] + [
            c for c in columns if c not in ('OperationNameValue', 'ActivityStatusValue')]
        rows = [dict(row, OperationName=('Run Command on Virtual Machine' if 'runcommand' in row['OperationNameValue'].lower()
                                         else row['OperationNameValue']),
                     ActivityStatus=row.get('ActivityStatusValue'),
                     Properties=json.dumps({'statusCode': 'OK', 'message': row['OperationNameValue']}, indent=2))
                for row in rows]
    names = [('%s [UTC]' % c if portal and COLUMNS[table].get(c) == DATETIME else c) for c in columns]
    if portal:
        names = ['$table'] + names
    newline = '\r\n' if portal else '\n'
    lines = [','.join(_csv_cell(n) for n in names)]
    for row in rows:
        cells = [_csv_value(table, c, row.get(c), portal) for c in columns]
        if portal:
            cells = [table] + cells
        lines.append(','.join(_csv_cell(c) for c in cells))
    data = ((b'\xef\xbb\xbf' if portal else b'') + (newline.join(lines) + newline).encode('utf-8'))
    return _write_bytes(path, data, gz)


def write_shape(shape, table, rows, directory, tag='0'):
    """Writes `rows` of `table` in one export shape under `directory`; returns the files."""
    d = os.path.join(directory, table)
    if shape in ('la_export', 'la_export_gz'):
        files = []
        by_blob = {}
        for row in rows:
            micros = parse_datetime_us(row['TimeGenerated']) if isinstance(row.get('TimeGenerated'), str) else 0
            iso = format_datetime_us(micros or 0)
            key = (iso[0:4], iso[5:7], iso[8:10], iso[11:13], '00')  # hourly blobs, some with overflow
            by_blob.setdefault(key, []).append(row)
        for number, (key, blob_rows) in enumerate(sorted(by_blob.items())):
            folder = os.path.join(d, 'WorkspaceResourceId=', 'subscriptions', 's', 'resourcegroups', 'rg', 'providers',
                                  'microsoft.operationalinsights', 'workspaces', 'ws',
                                  'y=%s' % key[0], 'm=%s' % key[1], 'd=%s' % key[2], 'h=%s' % key[3], 'm=%s' % key[4])
            halves = [blob_rows] if number % 3 else [blob_rows[:1], blob_rows[1:]]
            for part, part_rows in enumerate(halves):
                if part_rows:
                    name = ('PT1H.json' if len(halves) == 1 else 'PT05M.json') if part == 0 else 'PT05M_%d.json' % part
                    files.append(_dump_lines(os.path.join(folder, tag + name), part_rows, gz=shape.endswith('_gz')))
        return files
    if shape == 'records_rows':
        return [_dump_lines(os.path.join(d, 'eh', tag + 'messages.json'), [{'records': c} for c in _chunks(rows, 4)])]
    if shape == 'native_lines':
        return [_dump_lines(os.path.join(d, 'insights-logs', 'resourceId=', 'y=2024', tag + 'PT1H.json'),
                            [native(table, r, i) for i, r in enumerate(rows)])]
    if shape == 'native_records':
        records = [native(table, r, i) for i, r in enumerate(rows)]
        return [_dump_lines(os.path.join(d, 'eh-native', tag + 'messages.json'), [{'records': c} for c in _chunks(records, 5)])]
    if shape == 'avro':
        bodies = []
        for i, chunk in enumerate(_chunks(rows, 3)):
            if i % 3 == 0:
                bodies.append(json.dumps({'records': chunk}).encode('utf-8'))
            elif i % 3 == 1:
                bodies.append(json.dumps({'records': [native(table, r, j) for j, r in enumerate(chunk)]}).encode('utf-8'))
            else:
                bodies.extend(json.dumps(native(table, r, j), indent=1).encode('utf-8') for j, r in enumerate(chunk))
        path = os.path.join(d, 'ns', 'hub', '0', '2024', '03', '01', '10', '00', tag + '00.avro')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_capture(path, bodies, codec='deflate', sync_interval=2000)
        return [path]
    if shape in ('csv_portal', 'csv_portal_gz'):
        return [write_csv(os.path.join(d, tag + 'query_data.csv'), table, rows, gz=shape.endswith('_gz'))]
    if shape == 'csv_adx':
        return [write_csv(os.path.join(d, tag + 'export.csv'), table, rows, portal=False)]
    if shape == 'csv_legacy':
        if table != AZURE_ACTIVITY:
            return write_shape('csv_portal', table, rows, directory, tag)
        old = [r for r in rows if isinstance(r.get('OperationNameValue'), str) and r['OperationNameValue']]
        new = [r for r in rows if r not in old]
        files = [write_csv(os.path.join(d, tag + 'legacy.csv'), table, old, legacy=True)]
        if new:
            files.append(write_csv(os.path.join(d, tag + 'new.csv'), table, new))
        return files
    if shape == 'pretty':
        path = os.path.join(d, tag + 'pretty.json')
        os.makedirs(d, exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            for i, row in enumerate(rows):
                handle.write(json.dumps(native(table, row, i) if i % 2 else row, indent=2) + '\n')
        return [path]
    if shape == 'pretty_array':
        path = os.path.join(d, tag + 'array.json')
        os.makedirs(d, exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(json.dumps(rows, indent=2))
        return [path]
    raise ValueError(shape)


# ---------------------------------------------------------------------------------------- tests

@pytest.fixture(scope='module')
def tables(tmp_path_factory):
    return logical_rows(tmp_path_factory.mktemp('generated'))


@pytest.fixture(scope='module')
def baseline(tables, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('baseline'))
    files = {t: _dump_lines(os.path.join(root, t, 'rows.jsonl'), rows) for t, rows in tables.items()}
    return root, files


def _typed(files, table):
    rows, dead = [], []
    for path in files:
        got, bad, _ = read_file(path, table)
        rows.extend(got)
        dead.extend(bad)
    return sorted(json.dumps(r, sort_keys=True) for r in rows), dead


def _relevant(table, row):
    """Whether a typed row can matter to the rule (what the prefilter must never skip): the first
    filter of its table's stage, under either semantics."""
    return any(is_relevant(table, row, Semantics.named(name)) for name in ('sentinel', 'strict'))


@pytest.mark.parametrize('shape', SHAPES)
def test_every_shape_gives_the_same_typed_rows(shape, tables, baseline, tmp_path):
    for table, rows in tables.items():
        expected, expected_dead = _typed([baseline[1][table]], table)
        files = write_shape(shape, table, rows, str(tmp_path))
        got, dead = _typed(files, table)
        assert dead == expected_dead == []
        assert got == expected, (shape, table)
        # The byte prefilter of --scan relevant keeps every relevant row, in every shape.
        needles, _ = read_filters(table, Semantics.named('sentinel'))
        kept = []
        for path in files:
            kept.extend(read_file(path, table, needles=needles)[0])
        relevant = sorted(json.dumps(r, sort_keys=True) for r in kept if _relevant(table, r))
        assert relevant == [r for r in expected if _relevant(table, json.loads(r))], (shape, table)


def _alerts(root, output, patterns, extra=()):
    argv = ['--runner=' + IN_PROCESS_RUNNER, '--output_dir', output,
            '--azure_activity', patterns[AZURE_ACTIVITY],
            '--device_file_events', patterns['DeviceFileEvents'],
            '--device_events', patterns['DeviceEvents']] + list(extra)
    rare_runcommand.run(argv)
    lines = []
    for path in sorted(glob.glob(os.path.join(output, 'alerts-*.jsonl'))):
        with open(path, encoding='utf-8') as handle:
            lines.extend(handle.read().splitlines())
    results = []
    for line in lines:
        start = line.index('"QueryResult":') + len('"QueryResult":')
        value, end = json.JSONDecoder().raw_decode(line, start)
        results.append(line[start:end])
        assert json.loads(line)['QueryResult'] == value
    return sorted(results)


@pytest.mark.slow
def test_mixed_shapes_give_byte_identical_alerts(tables, baseline, tmp_path):
    root, files = baseline
    expected = _alerts(root, str(tmp_path / 'out-baseline'), files)
    assert expected, 'the edge mix must raise alerts'
    for rotation, scan in ((0, 'relevant'),):  # per-shape typed rows are compared with --scan full above
        mixed = str(tmp_path / ('mixed%d' % rotation))
        for table, rows in tables.items():
            days = sorted({day_of(r) for r in rows})
            for number, day in enumerate(days):
                shape = SHAPES[(number * 3 + rotation + TABLES.index(table)) % len(SHAPES)]
                write_shape(shape, table, [r for r in rows if day_of(r) == day], mixed, tag='d%d-' % number)
        patterns = {t: os.path.join(mixed, t, '**') for t in TABLES}
        got = _alerts(mixed, str(tmp_path / ('out-mixed%d' % rotation)), patterns, ['--scan', scan])
        assert got == expected
