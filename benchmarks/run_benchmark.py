"""Benchmark of the Beam pipeline against DuckDB running the same detection on the same files.

    python3 -m benchmarks.run_benchmark --mix realistic --rows 1000000 [--seed 1] [--days 7]
        [--repeat 3] [--engines duckdb,beam-default,beam-full,beam-relevant,beam-relevant-mp2] [--name NAME]
        [--data-root benchmarks/out/data] [--oracle]

For one input size and mix it

1. generates the three JSON-lines tables with ``tools.generate`` (cached in
   ``<data-root>/<mix>-<rows>-s<seed>-d<days>/``: the generator is deterministic);
2. runs each engine as a child process, alternating the engines round after round (``--repeat``
   rounds, the order rotated each round), measuring wall time, CPU time and peak memory:
   ``peak_rss_mb`` is the largest resident set of any single process of the run (``os.wait4``'s
   ``ru_maxrss``, which covers the child and the descendants it waited for), ``peak_tree_rss_mb``
   the largest sum of the resident sets of the child and all its descendants, sampled from /proc
   every 50 ms (this is the figure that matters for multi-process runs);
3. checks that every run's result rows equal DuckDB's, as a multiset, after normalising datetimes to
   UTC microseconds and Prevalence to 9 significant digits (with ``--oracle``, also against the
   reference oracle of /work/shared/oracle); a wrong answer makes the script exit with status 1;
4. prints the medians (wall time, rows/s, MB/s, peak memory, ratio pipeline/DuckDB) and writes
   everything to ``benchmarks/results/<name>.json``.

Engines:

* ``duckdb``: ``benchmarks/duckdb_detection.sql``, one statement reading the files with ``read_json``
  (all cores);
* ``beam-default``: ``python3 -m pipelines.rare_runcommand <inputs> --output_dir D`` and nothing else:
  what a user runs (``--scan full``; one worker process per core for a large input, see
  pipelines/local_workers.py);
* ``beam-full`` / ``beam-relevant``: ``python3 -m pipelines.rare_runcommand`` on the in-process
  FnApiRunner in one process (``--direct_num_workers=1``) with ``--scan full`` / ``--scan relevant``;
* ``beam-full-mp2`` / ``beam-relevant-mp2``: the same with
  ``--direct_running_mode=multi_processing --direct_num_workers=2``;
* ``beam-flink-full`` / ``beam-flink-relevant``: the same command with Beam's FlinkRunner on the local
  Flink cluster (``templates/flink/local_cluster.sh start`` first), parallelism 2. The cluster's
  processes (JobManager, TaskManagers, the SDK worker pool and its workers) are not children of the
  launching process: their CPU time during the run (from /proc, children they reaped included) is
  added to the launcher's, and their resident sets to the sampled peak of the process tree. Their
  workers import the project installed in the cluster's Python, not the snapshot below: benchmark a
  clean working tree.

The helper subcommand ``python3 -m benchmarks.run_benchmark duckdb-run ...`` is what the ``duckdb``
engine runs in its child process.
"""

import argparse
import glob
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SQL_PATH = os.path.join(HERE, 'duckdb_detection.sql')
RESULTS_DIR = os.path.join(HERE, 'results')
DEFAULT_DATA_ROOT = os.path.join(HERE, 'out', 'data')
DEFAULT_ORACLE = '/work/shared/oracle/kql_oracle.py'
DEFAULT_ORACLE_PYTHON = '/work/.venv-oracle/bin/python'
TABLE_FILES = ('AzureActivity', 'DeviceFileEvents', 'DeviceEvents')
TABLE_OPTIONS = {'AzureActivity': 'azure_activity', 'DeviceFileEvents': 'device_file_events',
                 'DeviceEvents': 'device_events'}
DAY_US = 86_400_000_000
ENGINES = ('duckdb', 'beam-default', 'beam-full', 'beam-relevant', 'beam-full-mp2', 'beam-relevant-mp2',
           'beam-flink-full', 'beam-flink-relevant')
DEFAULT_ENGINES = ('duckdb', 'beam-default', 'beam-full', 'beam-relevant', 'beam-relevant-mp2')
DATETIME_COLUMNS = ('timestamp', 'StartTime', 'EndTime', 'QueryPeriodStart', 'QueryPeriodEnd')
RESULT_COLUMNS = ('timestamp', 'StartTime', 'EndTime', 'PowershellFileName', 'VirtualMachineName', 'Caller',
                  'CallerName', 'CallerUPNSuffix', 'CallerIpAddress', 'PowershellScriptCommands',
                  'PowershellFileSize', 'ScriptFingerprintHash', 'Prevalence', 'Scope')


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def snapshot_source(ref='HEAD', root=None):
    """A private copy (``git archive``) of the project at commit `ref`; returns (directory, commit).

    The pipeline and the generator run from this copy, so that edits in progress in the working tree
    do not change (or break) the code being measured; its C extensions are built in it. `ref='.'`
    means the working tree itself.
    """
    if ref == '.':
        return REPO, 'working-tree'
    commit = subprocess.run(['git', 'rev-parse', ref], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    directory = os.path.join(root or os.path.join(HERE, 'out', 'src'), commit[:12])
    if not os.path.exists(os.path.join(directory, '.complete')):
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.makedirs(directory)
        archive = subprocess.run(['git', 'archive', commit], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(['tar', '-x', '-C', directory], input=archive, check=True)
        if os.path.exists(os.path.join(directory, 'transforms', 'read', '_blockscan.c')):
            # The compiled extensions, in place, as an installation of that commit builds them.
            subprocess.run([sys.executable, 'setup.py', '-q', 'build_ext', '--inplace'], cwd=directory,
                           capture_output=True, check=True)
        compile_modules(directory)
        open(os.path.join(directory, '.complete'), 'w').close()
    return directory, commit


def compile_modules(directory):
    """Byte-compiles the Python modules under `directory` (not its ``out`` folders), as pip does when
    it installs a package: a run then loads them instead of compiling them from source, which every
    run did on a machine that sets PYTHONDONTWRITEBYTECODE (as this one does: 0.1-0.15 s a run)."""
    import compileall  # pylint: disable=import-outside-toplevel
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and name not in ('out', 'tests') and not name.startswith('.'):
            compileall.compile_dir(path, quiet=1, rx=re.compile(r'[/\\]out[/\\]'))


def dataset_dir(data_root, mix, rows, seed, days):
    return os.path.join(data_root, '%s-%d-s%d-d%d' % (mix, rows, seed, days))


def table_paths(directory):
    """{table: path} of a generated data set (plain or gzip JSON lines)."""
    paths = {}
    for table in TABLE_FILES:
        for ext in ('.jsonl', '.jsonl.gz'):
            path = os.path.join(directory, table + ext)
            if os.path.exists(path):
                paths[table] = path
                break
        else:
            raise FileNotFoundError(os.path.join(directory, table + '.jsonl'))
    return paths


def ensure_dataset(data_root, mix, rows, seed, days, gzip=False, log=print, source=REPO):
    """The directory of the generated data set, generating it unless a complete copy is cached.

    Returns (directory, info) where info has the rows per table, bytes and generation seconds.
    """
    directory = dataset_dir(data_root, mix, rows, seed, days) + ('-gz' if gzip else '')
    marker = os.path.join(directory, 'generated.json')
    if os.path.exists(marker):
        with open(marker, encoding='utf-8') as handle:
            return directory, json.load(handle)
    if os.path.exists(directory):
        shutil.rmtree(directory)
    command = [sys.executable, '-m', 'tools.generate', '--out', directory, '--rows', str(rows),
               '--mix', mix, '--days', str(days), '--seed', str(seed)] + (['--gzip'] if gzip else [])
    log('generating: ' + ' '.join(command))
    started = time.monotonic()
    completed = subprocess.run(command, cwd=source, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    counts = json.loads(completed.stderr.strip().splitlines()[-1])
    paths = table_paths(directory)
    info = {
        'mix': mix, 'rows_requested': rows, 'seed': seed, 'days': days, 'gzip': gzip,
        'rows': counts, 'total_rows': sum(counts.values()),
        'bytes': {table: os.path.getsize(path) for table, path in paths.items()},
        'generation_seconds': round(seconds, 2), 'generator_command': ' '.join(command[1:]),
    }
    info['total_bytes'] = sum(info['bytes'].values())
    with open(marker, 'w', encoding='utf-8') as handle:
        json.dump(info, handle, indent=1)
    log('generated %d rows, %.1f MB in %.1f s (%.0f rows/s)' % (
        info['total_rows'], info['total_bytes'] / 1e6, seconds, info['total_rows'] / seconds))
    return directory, info


# ---------------------------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------------------------
def duckdb_rows(paths, period_us=DAY_US, offset_us=0, threads=None):
    """Result rows (dicts, JSON-ready) of benchmarks/duckdb_detection.sql on the given files."""
    import duckdb  # pylint: disable=import-outside-toplevel
    with open(SQL_PATH, encoding='utf-8') as handle:
        sql = handle.read()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    if threads:
        connection.execute('SET threads = %d' % int(threads))
    cursor = connection.execute(sql, {
        'azure_activity': paths['AzureActivity'], 'device_file_events': paths['DeviceFileEvents'],
        'device_events': paths['DeviceEvents'], 'period_us': period_us, 'offset_us': offset_us})
    columns = [description[0] for description in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(columns, values))
        # JSON-typed columns come back as their JSON text.
        row['PowershellScriptCommands'] = json.loads(row['PowershellScriptCommands'])
        row['Scope'] = None if row['Scope'] is None else json.loads(row['Scope'])
        rows.append(row)
    connection.close()
    return rows


def write_jsonl(rows, path):
    with open(path, 'w', encoding='utf-8') as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(',', ':')) + '\n')


def read_jsonl(path):
    with open(path, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


# ---------------------------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------------------------
FLINK_ARGS = ['--runner', 'FlinkRunner', '--flink_master', 'localhost:8081', '--environment_type', 'EXTERNAL',
              '--environment_config', 'localhost:50000', '--parallelism', '2']
FLINK_LOCAL_DIR = os.environ.get('FLINK_LOCAL_DIR', os.path.join(REPO, '.flink-local'))


def pipeline_command(paths, output_dir, scan='relevant', workers=None, python=sys.executable, flink=False):
    """The pipeline's command line; `scan` and `workers` None: left to the pipeline's defaults."""
    command = [python, '-m', 'pipelines.rare_runcommand']
    for table, option in TABLE_OPTIONS.items():
        command += ['--' + option, paths[table]]
    command += ['--output_dir', output_dir]
    if scan:
        command += ['--scan', scan]
    if workers == 1:
        command += ['--direct_num_workers=1']
    elif workers:
        command += ['--direct_running_mode=multi_processing', '--direct_num_workers=%d' % workers]
    if flink:
        command += FLINK_ARGS
    return command


def flink_cluster_pids():
    """The pids of the local Flink cluster's processes (local_cluster.sh's PID files)."""
    pids = []
    for path in glob.glob(os.path.join(FLINK_LOCAL_DIR, '*.pid')):
        with open(path, encoding='ascii') as handle:
            pid = int(handle.read().strip() or 0)
        if pid and os.path.exists('/proc/%d' % pid):
            pids.append(pid)
    if not pids:
        raise RuntimeError('no local Flink cluster runs: templates/flink/local_cluster.sh start')
    return pids


def pipeline_rows(output_dir):
    """The query's result rows (QueryResult plus the window) of the alerts a run wrote."""
    rows = []
    for path in sorted(glob.glob(os.path.join(output_dir, 'alerts-*.jsonl'))):
        for alert in read_jsonl(path):
            results = [alert['QueryResult']] if 'QueryResult' in alert else alert['QueryResults']
            for result in results:
                rows.append(dict(result, QueryPeriodStart=alert['QueryPeriodStart'],
                                 QueryPeriodEnd=alert['QueryPeriodEnd']))
    return rows


def parse_counters(stdout):
    """The counters of the pipeline's run summary: {'AzureActivity': {'read':..}, 'alerts': n, ...}."""
    summary = {}
    for line in stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] in TABLE_FILES and len(parts) >= 9:
            summary[parts[0]] = {parts[i]: int(parts[i + 1]) for i in (1, 3, 5, 7)}
        elif parts[0] in ('sessions', 'joined_rows', 'scripts', 'run_command_data', 'alerts') and len(parts) == 2:
            summary[parts[0]] = int(parts[1])
    return summary


# ---------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------
def _instant_us(text):
    if text is None:
        return None
    value = datetime.fromisoformat(_truncate_fraction(text).replace('Z', '+00:00'))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _truncate_fraction(text):
    if '.' not in text:
        return text
    head, _, rest = text.partition('.')
    digits = ''
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    return head + '.' + digits[:6].ljust(6, '0') + rest


def _significant(value, digits=9):
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return float('%.*g' % (digits, value))


def normalise(row):
    """A canonical, hashable text of one result row (14 columns and, if present, the window)."""
    out = {}
    for column in RESULT_COLUMNS + ('QueryPeriodStart', 'QueryPeriodEnd'):
        if column not in row:
            continue
        value = row[column]
        if column in DATETIME_COLUMNS:
            value = _instant_us(value)
        elif column == 'Prevalence':
            value = _significant(float(value))
        elif column == 'PowershellScriptCommands' and isinstance(value, str):
            value = json.loads(value)
        out[column] = value
    return json.dumps(out, sort_keys=True, ensure_ascii=False, separators=(',', ':'))


def compare(expected, actual):
    """(equal, description): multiset comparison of two lists of result rows."""
    left, right = Counter(map(normalise, expected)), Counter(map(normalise, actual))
    if left == right:
        return True, '%d rows equal' % len(expected)
    missing, extra = left - right, right - left
    lines = ['%d rows expected, %d got; %d missing, %d unexpected' % (
        len(expected), len(actual), sum(missing.values()), sum(extra.values()))]
    lines += ['  missing:    ' + text for text in list(missing)[:3]]
    lines += ['  unexpected: ' + text for text in list(extra)[:3]]
    return False, '\n'.join(lines)


def oracle_rows(paths, out_path, oracle=DEFAULT_ORACLE, python=DEFAULT_ORACLE_PYTHON, period='1d'):
    subprocess.run([python, oracle, '--azure-activity', paths['AzureActivity'],
                    '--device-file-events', paths['DeviceFileEvents'], '--device-events', paths['DeviceEvents'],
                    '--period', period, '--out', out_path], check=True, capture_output=True)
    return read_jsonl(out_path)


# ---------------------------------------------------------------------------------------------
# measuring a child process
# ---------------------------------------------------------------------------------------------
def _children_map():
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b')') + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _tree_rss_bytes(root, extra_roots=()):
    children = _children_map()
    total, stack, page = 0, [root, *extra_roots], os.sysconf('SC_PAGE_SIZE')
    while stack:
        pid = stack.pop()
        try:
            with open('/proc/%d/statm' % pid, 'rb') as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, ()))
    return total


def _tree_cpu_seconds(roots):
    """CPU seconds of the processes under `roots` so far, with what they got from children they reaped."""
    children = _children_map()
    total, stack, ticks = 0, list(roots), os.sysconf('SC_CLK_TCK')
    while stack:
        pid = stack.pop()
        try:
            with open('/proc/%d/stat' % pid, 'rb') as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b')') + 2:].split()
        total += sum(int(value) for value in fields[11:15])   # utime, stime, cutime, cstime
        stack.extend(children.get(pid, ()))
    return total / ticks


def measure(command, cwd=REPO, env=None, sample_seconds=0.05, extra_roots=()):
    """Runs `command`; returns {'wall_s', 'cpu_s', 'peak_rss_mb', 'peak_tree_rss_mb', 'returncode', 'stdout', 'stderr'}.

    `extra_roots`: pids of processes outside the command's tree that work for it (a cluster): their
    CPU time during the run and their resident sets count as the command's."""
    extra_cpu = _tree_cpu_seconds(extra_roots) if extra_roots else 0.0
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(sample_seconds):
            peak[0] = max(peak[0], _tree_rss_bytes(process.pid, extra_roots))

    output = {}

    def drain(name, stream):
        output[name] = stream.read()

    threads = [threading.Thread(target=sample, daemon=True),
               threading.Thread(target=drain, args=('stdout', process.stdout), daemon=True),
               threading.Thread(target=drain, args=('stderr', process.stderr), daemon=True)]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    done.set()
    for thread in threads:
        thread.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if extra_roots:
        extra_cpu = _tree_cpu_seconds(extra_roots) - extra_cpu
    return {
        'wall_s': wall,
        'cpu_s': usage.ru_utime + usage.ru_stime + extra_cpu,
        'peak_rss_mb': usage.ru_maxrss / 1024.0,
        'peak_tree_rss_mb': max(peak[0] / 2 ** 20, usage.ru_maxrss / 1024.0),
        'returncode': process.returncode,
        'stdout': output.get('stdout', b'').decode('utf-8', 'replace'),
        'stderr': output.get('stderr', b'').decode('utf-8', 'replace'),
    }


def scans_every_record(engine):
    """Whether a pipeline engine runs with --scan full (the beam-full* and beam-flink-full engines)."""
    return engine.startswith('beam-full') or engine.endswith('-full')


def engine_command(engine, paths, work_dir):
    """(command, where its rows land) of one engine run."""
    if engine == 'duckdb':
        out = os.path.join(work_dir, 'duckdb.jsonl')
        command = [sys.executable, '-m', 'benchmarks.run_benchmark', 'duckdb-run', '--out', out]
        for table, option in TABLE_OPTIONS.items():
            command += ['--' + option, paths[table]]
        return command, out
    if not engine.startswith('beam-'):
        raise ValueError(engine)
    output_dir = os.path.join(work_dir, engine)
    if engine == 'beam-default':
        return pipeline_command(paths, output_dir, None, None), output_dir
    scan = 'full' if scans_every_record(engine) else 'relevant'
    workers = 2 if engine.endswith('-mp2') else (None if '-flink-' in engine else 1)
    return pipeline_command(paths, output_dir, scan, workers, flink='-flink-' in engine), output_dir


def run_engine(engine, paths, work_dir, source=REPO):
    """One measured run of `engine` (the pipeline run from the project copy `source`):
    the measurement and the result rows."""
    command, out = engine_command(engine, paths, work_dir)
    if os.path.isdir(out):
        shutil.rmtree(out)
    elif os.path.exists(out):
        os.remove(out)
    extra_roots = flink_cluster_pids() if '-flink-' in engine else ()
    result = measure(command, cwd=REPO if engine == 'duckdb' else source, extra_roots=extra_roots)
    if result['returncode'] != 0:
        raise RuntimeError('%s failed (%d):\n%s' % (engine, result['returncode'], result['stderr'][-3000:]))
    rows = read_jsonl(out) if engine == 'duckdb' else pipeline_rows(out)
    result['command'] = ' '.join(command[1:]) if command[0] == sys.executable else ' '.join(command)
    if engine != 'duckdb':
        result['counters'] = parse_counters(result['stdout'])
    return result, rows


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------
def median(values):
    return statistics.median(values) if values else None


def summarise(runs, info):
    walls = [run['wall_s'] for run in runs]
    wall = median(walls)
    return {
        'runs': len(runs),
        'wall_s_median': round(wall, 3),
        'wall_s_all': [round(w, 3) for w in walls],
        'cpu_s_median': round(median([run['cpu_s'] for run in runs]), 3),
        'rows_per_s': round(info['total_rows'] / wall),
        'mb_per_s': round(info['total_bytes'] / 1e6 / wall, 1),
        'peak_rss_mb_median': round(median([run['peak_rss_mb'] for run in runs]), 1),
        'peak_tree_rss_mb_median': round(median([run['peak_tree_rss_mb'] for run in runs]), 1),
    }


def benchmark(mix, rows, seed=1, days=7, repeat=3, engines=DEFAULT_ENGINES, data_root=DEFAULT_DATA_ROOT,
              work_dir=None, check_oracle=False, gzip=False, log=print, source_ref='HEAD', full_repeat=None):
    """Runs the benchmark of one size and mix; returns the report (a JSON-ready dict)."""
    source, commit = snapshot_source(source_ref)
    log('pipeline source: %s (%s)' % (source, commit))
    # The duckdb engine's child runs this module from the working tree: compiled as the pipeline's are.
    import compileall  # pylint: disable=import-outside-toplevel
    compileall.compile_dir(HERE, maxlevels=0, quiet=1)
    directory, info = ensure_dataset(data_root, mix, rows, seed, days, gzip=gzip, log=log, source=source)
    paths = table_paths(directory)
    # Outputs of this invocation only: two benchmarks running at once must not share (and delete)
    # each other's pipeline output directories.
    own_work_dir = work_dir is None
    work_dir = work_dir or os.path.join(os.path.dirname(directory), 'runs', os.path.basename(directory),
                                        '%d-%d' % (os.getpid(), time.time()))
    os.makedirs(work_dir, exist_ok=True)
    engines = list(engines)
    measurements = {engine: [] for engine in engines}
    checks = []
    failed_runs = []
    reference = None
    failures = 0
    for round_number in range(repeat):
        shift = round_number % len(engines)
        for engine in engines[shift:] + engines[:shift]:
            if full_repeat is not None and scans_every_record(engine) and round_number >= full_repeat:
                continue
            try:
                result, result_rows = run_engine(engine, paths, work_dir, source)
            except RuntimeError as error:  # a failed run is reported, not measured
                failed_runs.append({'engine': engine, 'round': round_number + 1, 'error': str(error)[-2000:]})
                log('round %d %-18s FAILED: %s' % (round_number + 1, engine, str(error).splitlines()[-1][:300]))
                continue
            if reference is None and engine == 'duckdb':
                reference = result_rows
            measurements[engine].append(result)
            checks.append((engine, round_number, result_rows))
            log('round %d %-18s %8.2f s  cpu %8.2f s  peak %7.0f MB (tree %7.0f MB)  %d rows' % (
                round_number + 1, engine, result['wall_s'], result['cpu_s'], result['peak_rss_mb'],
                result['peak_tree_rss_mb'], len(result_rows)))
    if reference is None:  # DuckDB not among the engines: compute its rows in-process
        reference = duckdb_rows(paths)
    correctness = {}
    for engine, round_number, result_rows in checks:
        equal, description = compare(reference, result_rows)
        correctness.setdefault(engine, []).append(description if equal else 'DIFFERENT: ' + description)
        if not equal:
            failures += 1
            log('MISMATCH %s round %d vs DuckDB SQL: %s' % (engine, round_number + 1, description))
    oracle_check = None
    if check_oracle:
        expected = oracle_rows(paths, os.path.join(work_dir, 'oracle.jsonl'))
        equal, description = compare(expected, reference)
        oracle_check = description if equal else 'DIFFERENT: ' + description
        if not equal:
            failures += 1
        log('DuckDB SQL vs reference oracle: ' + oracle_check)
    if own_work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    summary = {engine: summarise(runs, info) for engine, runs in measurements.items() if runs}
    if 'duckdb' in summary:
        base = summary['duckdb']['wall_s_median']
        for engine, values in summary.items():
            if engine != 'duckdb':
                values['ratio_to_duckdb'] = round(values['wall_s_median'] / base, 2)
    report = {
        'name': None,
        'created': datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'machine': {'cpus': os.cpu_count(), 'python': platform.python_version(),
                    'platform': platform.platform(), 'memory_gib': _memory_gib()},
        'versions': _versions(),
        'pipeline_commit': commit,
        # Whether the pipeline ran with the compiled block scanner (transforms/read/blockscan.py).
        'native_scanner': any(not path.endswith('.c') for path in
                              glob.glob(os.path.join(source, 'transforms', 'read', '_blockscan*'))),
        'dataset': dict(info, directory=directory),
        'repeat': repeat,
        'full_repeat': full_repeat,
        'engines': engines,
        'result_rows': len(reference),
        'summary': summary,
        'correctness_vs_duckdb': correctness,
        'duckdb_vs_oracle': oracle_check,
        'commands': {engine: runs[0]['command'] for engine, runs in measurements.items() if runs},
        'pipeline_counters': {engine: runs[0].get('counters') for engine, runs in measurements.items()
                              if runs and engine != 'duckdb'},
        'runs': {engine: [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items()
                           if k in ('wall_s', 'cpu_s', 'peak_rss_mb', 'peak_tree_rss_mb')} for run in runs]
                 for engine, runs in measurements.items()},
        'mismatches': failures,
        'failed_runs': failed_runs,
    }
    return report


def _memory_gib():
    try:
        with open('/proc/meminfo', encoding='ascii') as handle:
            return round(int(handle.readline().split()[1]) / 2 ** 20, 1)
    except OSError:
        return None


def _versions():
    versions = {}
    for module in ('apache_beam', 'duckdb'):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # pylint: disable=broad-except
            versions[module] = None
    return versions


def format_table(report):
    lines = ['%s: %s mix, %d rows, %.0f MB, %d round(s); %d result rows' % (
        report['name'], report['dataset']['mix'], report['dataset']['total_rows'],
        report['dataset']['total_bytes'] / 1e6, report['repeat'], report['result_rows'])]
    lines.append('%-18s %10s %10s %11s %8s %10s %10s %8s' % (
        'engine', 'wall s', 'cpu s', 'rows/s', 'MB/s', 'peak MB', 'tree MB', 'x DuckDB'))
    for engine, values in report['summary'].items():
        lines.append('%-18s %10.2f %10.2f %11d %8.1f %10.0f %10.0f %8s' % (
            engine, values['wall_s_median'], values['cpu_s_median'], values['rows_per_s'], values['mb_per_s'],
            values['peak_rss_mb_median'], values['peak_tree_rss_mb_median'],
            values.get('ratio_to_duckdb', '')))
    return '\n'.join(lines)


def markdown_table(reports):
    """A Markdown table of the medians of several reports (``run_benchmark table results/*.json``)."""
    lines = ['| data set | rows | MB | engine | runs | wall s (median) | CPU s | rows/s | MB/s | peak RSS MB '
             '(largest process) | peak RSS MB (process tree) | wall ratio pipeline / DuckDB | CPU ratio | result rows equal |',
             '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for report in reports:
        data = report['dataset']
        duck_cpu = report['summary'].get('duckdb', {}).get('cpu_s_median')
        for engine, values in report['summary'].items():
            cpu_ratio = '%.1f' % (values['cpu_s_median'] / duck_cpu) if duck_cpu and engine != 'duckdb' else '-'
            checks = report['correctness_vs_duckdb'].get(engine, [])
            equal = all(not c.startswith('DIFFERENT') for c in checks)
            lines.append('| %s | %d | %.0f | %s | %d | %.2f | %.2f | %d | %.1f | %.0f | %.0f | %s | %s | %s |' % (
                data['mix'], data['total_rows'], data['total_bytes'] / 1e6, engine, values['runs'],
                values['wall_s_median'], values['cpu_s_median'], values['rows_per_s'], values['mb_per_s'],
                values['peak_rss_mb_median'], values['peak_tree_rss_mb_median'],
                values.get('ratio_to_duckdb', '-'), cpu_ratio,
                ('yes (%d rows)' % report['result_rows']) if equal else 'NO'))
    return '\n'.join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == 'duckdb-run':
        return _duckdb_run(argv[1:])
    if argv and argv[0] == 'table':
        print(markdown_table([json.load(open(path, encoding='utf-8')) for path in argv[1:]]))
        return 0
    parser = argparse.ArgumentParser(prog='python3 -m benchmarks.run_benchmark',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--mix', choices=('realistic', 'dense'), default='realistic')
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--days', type=int, default=7)
    parser.add_argument('--gzip', action='store_true', help='benchmark on .jsonl.gz inputs')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--full-repeat', type=int, default=None,
                        help='run the beam-full* engines in the first N rounds only (they are slow)')
    parser.add_argument('--engines', default=','.join(DEFAULT_ENGINES),
                        help='comma-separated, from: ' + ', '.join(ENGINES))
    parser.add_argument('--name', default=None, help='results/<name>.json (default: <mix>-<rows>)')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    parser.add_argument('--source', default='HEAD',
                        help="git commit whose copy runs the pipeline and the generator ('.' = the working tree)")
    parser.add_argument('--oracle', action='store_true',
                        help='also check the DuckDB SQL rows against the reference oracle ' + DEFAULT_ORACLE)
    args = parser.parse_args(argv)
    engines = [engine.strip() for engine in args.engines.split(',') if engine.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error('unknown engines: %s' % ', '.join(sorted(unknown)))
    report = benchmark(args.mix, args.rows, args.seed, args.days, args.repeat, engines, args.data_root,
                       check_oracle=args.oracle, gzip=args.gzip, source_ref=args.source,
                       full_repeat=args.full_repeat)
    report['name'] = args.name or '%s-%d%s' % (args.mix, args.rows, '-gz' if args.gzip else '')
    report['command'] = 'python3 -m benchmarks.run_benchmark ' + ' '.join(argv)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, report['name'] + '.json')
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1)
    print()
    print(format_table(report))
    print('written: ' + os.path.relpath(path, REPO))
    for failed in report['failed_runs']:
        print('FAILED run: %s round %d' % (failed['engine'], failed['round']))
    return 1 if report['mismatches'] or report['failed_runs'] else 0


def _duckdb_run(argv):
    parser = argparse.ArgumentParser(prog='python3 -m benchmarks.run_benchmark duckdb-run')
    for option in TABLE_OPTIONS.values():
        parser.add_argument('--' + option, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    paths = {table: getattr(args, option) for table, option in TABLE_OPTIONS.items()}
    write_jsonl(duckdb_rows(paths, threads=args.threads), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
