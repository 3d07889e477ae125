"""Azure VM Run Command operations executing a unique PowerShell script, as a Beam pipeline.

    python -m pipelines.rare_runcommand \\
        --azure_activity 'exports/AzureActivity/**' \\
        --device_file_events 'exports/DeviceFileEvents/**' \\
        --device_events 'exports/DeviceEvents/**' \\
        --output_dir out/ [--semantics sentinel|strict] [--query_period 1d --query_frequency 1d]

`--sample` runs it on the bundled sample day. Usage errors stop the command before any work, in
one line with exit status 2 (`pipelines.usage`). This module only wires the stages of `transforms`
together with the options of `pipelines.options`.
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import uuid
import warnings

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from pipelines.options import IN_PROCESS_RUNNER, DetectionOptions
from pipelines import console
from pipelines.beam_overheads import (OptionsWithViews, cache_dofn_specs, prefer_cloudpickle, skip_ipython_probe,
                                      zlib_pickles)
from pipelines.kafka_options import KafkaOptions
from pipelines.local_workers import apply_default_workers, in_process_runner, workers_share_this_process
from pipelines.preflight import PreflightError, check_runner_endpoints
from pipelines.sink_options import SinkOptions, sink_settings
from pipelines.usage import UsageError, check_arguments, check_batch_run, flags_given
from transforms.detect import baseline
from transforms.detect.alerts import ALERTS, ToAlerts
from transforms.detect.per_window import DetectPerWindow
from transforms.detect.query import RESULTS, RUN_COMMAND_DATA, DetectUniqueScripts
from transforms.detect.relevance import read_filters
from transforms.detect.rule import load_rule
from transforms.detect.semantics import Semantics, parse_scale_set_prefixes
from transforms.detect.windows import QueryWindows, parse_instant, parse_timespan
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS, TABLES
from transforms.read import progress
from transforms.read.dead_letter import DEAD_LETTER
from transforms.read.input_files import list_inputs
from transforms.read.sources import TABLE_ROWS, ReadTables, UnreadableInput, counts_output, rows_output
from transforms.write import output_folder
from transforms.write.files import (ALERT_FILES, DEAD_LETTER_FILES, OUTPUT_PREFIXES, RUN_REPORT_FILES, WINDOW_FILES,
                                    WriteJsonLines)
from transforms.write.run_report import read_alerts, write_run_report
from transforms.write.sinks import write_outputs
from transforms.write.window_summary import SummarizeWindows

STREAMING_OPTIONS = ('input_subscription_azure_activity', 'input_subscription_device_file_events',
                     'input_subscription_device_events', 'allowed_lateness', 'alerts_topic', 'dead_letter_topic')
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample_data')
DEFAULT_OUTPUT_DIR = 'rare_runcommand_output'
TABLE_OPTIONS = {AZURE_ACTIVITY: 'azure_activity', DEVICE_FILE_EVENTS: 'device_file_events',
                 DEVICE_EVENTS: 'device_events'}


def _csv(text):
    return tuple(item.strip() for item in text.split(',') if item.strip()) if text else None


def _timespan(text):
    return parse_timespan(text) if text else None


def semantics_of(detection):
    return Semantics.named(detection.semantics, _csv(detection.strict_operations),
                           _csv(detection.strict_process_names), _timespan(detection.strict_max_run_delay),
                           _timespan(detection.strict_look_ahead),
                           parse_scale_set_prefixes(detection.strict_scale_set_prefixes))


def update_baseline(detection, rule, output_dir):
    """After a successful run: the old store merged with this run's fingerprints, replaced atomically."""
    semantics = semantics_of(detection)
    old = baseline.read_store(detection.baseline_in, rule.id, semantics.name)
    run_dir = baseline.temporary_dir(output_dir)
    summaries = list(read_json_lines_output(run_dir, baseline.FINGERPRINT_FILES))
    baseline.write_store(detection.baseline_out, baseline.merge_store(old, summaries, rule.id, semantics.name))
    FileSystems.delete([run_dir])


def check_baseline_options(detection):
    """BaselineError before anything runs: a --baseline_in that does not exist, or a --baseline_out
    store that would be replaced without its history, unless --baseline_init says it is the first run."""
    first_run = detection.baseline_init == 'true'
    baseline.check_store(detection.baseline_in, first_run)
    if (detection.baseline_out and not detection.baseline_in and not first_run
            and FileSystems.exists(detection.baseline_out)):
        raise baseline.BaselineError(
            '--baseline_out %s exists and no --baseline_in is read: the run would replace the store without '
            'its history; pass it as --baseline_in too (or --baseline_init to start a new store)'
            % detection.baseline_out)


def resolve_inputs(options):
    """({table: file pattern}, whether it is the bundled sample day): the sample's files with --sample."""
    if getattr(options, 'sample', False):
        return {table: os.path.join(SAMPLE_DIR, table + '.jsonl.gz') for table in TABLES}, True
    return {table: getattr(options, name) for table, name in TABLE_OPTIONS.items()}, False


def query_windows(options, rule, semantics=None):
    period = parse_timespan(options.query_period or rule.query_period)
    frequency = parse_timespan(options.query_frequency or options.query_period or rule.query_frequency)
    offset = parse_timespan(options.window_offset) if options.window_offset else 0
    start = parse_instant(options.start) if options.start else None
    end = parse_instant(options.end) if options.end else None
    margin = semantics.look_ahead_us if semantics is not None else 0
    return QueryWindows(period, frequency, offset, start, end, margin)


def build(pipeline, options, output_dir=None):
    """Adds the detection to `pipeline`, writing under `output_dir` (default: --output_dir); returns
    (alerts, dead letters)."""
    detection = options.view_as(DetectionOptions)
    rule = load_rule(detection.rule)
    semantics = semantics_of(detection)
    windows = query_windows(detection, rule, semantics)
    patterns, _ = resolve_inputs(detection)
    output_dir = output_dir or detection.output_dir or DEFAULT_OUTPUT_DIR

    per_window = detection.detect_grouping == 'window'
    read = pipeline | 'ReadTables' >> ReadTables(
        {table: (patterns[table],) + tuple(read_filters(table, semantics, detection.scan)) for table in TABLES},
        detection.input_format, windows, validate_skipped=detection.scan == 'full', batches=per_window,
        tagged_rows=per_window)
    # The per-window detection folds every table's rows in one step, from the read's one output of them.
    tables = read[TABLE_ROWS] if per_window else {table: read[rows_output(table)] for table in TABLES}
    row_counts = {table: read[counts_output(table)] for table in TABLES}
    dead_letters = [read[DEAD_LETTER]]

    # The read step keeps only the rows `keep` accepts: the per-window fold need not test them again.
    detect = DetectPerWindow(semantics, batches=True, relevant=True) if per_window else DetectUniqueScripts(semantics)
    detected = tables | 'DetectUniqueScripts' >> detect
    alerts = detected[RESULTS] | 'ToAlerts' >> ToAlerts(rule, semantics.name)
    if detection.history_days or detection.baseline_out:
        sightings = detected[RUN_COMMAND_DATA] | 'FingerprintSightings' >> baseline.FingerprintSightings()
        if detection.history_days:
            stored = baseline.read_store(detection.baseline_in, rule.id, semantics.name)
            prior = pipeline | 'StoredSightings' >> beam.Create(list(baseline.store_observations(stored)))
            seen = (sightings, prior) | 'AllSightings' >> beam.Flatten()
            alerts = ({ALERTS: alerts, baseline.SEEN: seen}
                      | 'ApplyHistoryBaseline' >> baseline.ApplyHistoryBaseline(detection.history_days))
        if detection.baseline_out:
            (sightings
             | 'SummarizeFingerprints' >> baseline.SummarizeFingerprints()
             | 'WriteRunFingerprints' >> WriteJsonLines(baseline.temporary_dir(output_dir), baseline.FINGERPRINT_FILES))
    window_summary = dict(row_counts, **{ALERTS: alerts}) | 'SummarizeWindows' >> SummarizeWindows()
    window_summary | 'WriteWindowSummary' >> WriteJsonLines(output_dir, WINDOW_FILES)
    all_dead_letters = dead_letters | 'FlattenDeadLetters' >> beam.Flatten()
    write_outputs(alerts, all_dead_letters, sink_settings(options), output_dir)
    return alerts, all_dead_letters


def counters(result):
    """{namespace: {name: value}} of the run's committed counters."""
    summary = {}
    try:
        for counter in result.metrics().query()['counters']:
            namespace = counter.key.metric.namespace
            name = counter.key.metric.name
            value = counter.committed if counter.committed is not None else counter.attempted
            summary.setdefault(namespace, {})
            summary[namespace][name] = summary[namespace].get(name, 0) + (value or 0)
    except Exception:  # pylint: disable=broad-except  # some runners report no metrics
        logging.warning('The runner reported no metrics.')
    return summary


def print_summary(summary, output_dir, stream=None):
    lines = ['', 'Run summary']
    for table in TABLES:
        values = summary.get(table, {})
        lines.append('  %-17s read %9d  parsed %9d  dead-lettered %6d  prefilter-skipped %9d  '
                     'outside range %6d  relevant %7d' % (
                         table, values.get('read', 0), values.get('parsed', 0), values.get('dead_lettered', 0),
                         values.get('skipped_irrelevant', 0), values.get('outside_range', 0),
                         values.get('relevant', 0)))
    detection = summary.get('detection', {})
    for name in ('sessions', 'joined_rows', 'scripts', 'run_command_data', 'alerts'):
        lines.append('  %-17s %d' % (name, detection.get(name, 0)))
    (stream or sys.stdout).write('\n'.join(lines) + '\n')


def print_help(stream=None, prog='python -m pipelines.rare_runcommand'):
    """--help: the detection's own options (Beam's pipeline options are accepted too)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.strip().splitlines()[0],
        epilog="Beam's own pipeline options (--runner, --project, --region, --temp_location, --streaming, "
               "--direct_running_mode, ...) are accepted as well. 'rare-runcommand inspect' with the same input "
               'options lists the files each pattern matches, their format and first row, without running.')
    DetectionOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    SinkOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    KafkaOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.print_help(stream or sys.stdout)


# Streaming on Flink, unless the command line says otherwise: checkpoints every 10 s (Beam's Flink
# option; state and Kafka offsets survive a lost TaskManager), each finishing the open bundles before its
# barrier (else their output is buffered past it, and a watermark emitted meanwhile makes it late).
FLINK_STREAMING_DEFAULTS = ('--checkpointing_interval=10000', '--finish_bundle_before_checkpointing')


def with_stream_defaults(argv):
    """`argv` with the Flink streaming defaults the command line does not set."""
    probe = PipelineOptions(argv)
    runner = (probe.view_as(StandardOptions).runner or '').lower()
    if not probe.view_as(StandardOptions).streaming or 'flink' not in runner:
        return list(argv)
    given = flags_given(argv)
    return list(argv) + [default for default in FLINK_STREAMING_DEFAULTS if default.split('=', 1)[0] not in given]


def run(argv=None):
    with contextlib.ExitStack() as scope:  # what the run changes in this process for its duration
        return _run(list(sys.argv[1:] if argv is None else argv), scope)


def _run(argv, scope):
    if '-h' in argv or '--help' in argv:
        print_help()
        return None
    check_arguments(argv)
    skip_ipython_probe()
    cache_dofn_specs()
    options = OptionsWithViews(with_stream_defaults(argv))
    prefer_cloudpickle(options, argv)
    standard = options.view_as(StandardOptions)
    if standard.runner is None or standard.runner.lower() in ('fnapirunner', 'fnapi'):
        # Beam's DirectRunner first tries to download a runner binary; the in-process runner does not.
        standard.runner = IN_PROCESS_RUNNER
    detection = options.view_as(DetectionOptions)
    if not standard.streaming:
        check_batch_options(detection)
        try:
            sink_settings(options)
        except ValueError as error:
            raise UsageError(str(error)) from None
    check_runner_endpoints(options)
    in_process = standard.runner == IN_PROCESS_RUNNER and not standard.streaming
    if in_process:
        patterns, _ = resolve_inputs(detection)
        apply_default_workers(options, argv, patterns.values())  # one process per core for large inputs
        if workers_share_this_process(options):
            scope.enter_context(zlib_pickles())  # before the runner forks its workers' zygote
    try:
        pipeline = beam.Pipeline(runner=in_process_runner(options) if in_process else None, options=options)
    except ValueError as error:  # a --runner Beam does not have
        raise UsageError('--runner: %s' % error) from None
    if standard.streaming:
        from pipelines.stream_detection import build_streaming
        build_streaming(pipeline, options)
        exit_on_sigterm()
        result = pipeline.run()
        # A streaming job runs until it is cancelled; on Flink the job server lives in this process,
        # so it stays attached (stopping it leaves the job running on the cluster).
        sys.stderr.write('rare-runcommand: the streaming job runs until it is cancelled (%s)\n'
                         % type(result).__name__)
        result.wait_until_finish()
        return result
    output_dir = detection.output_dir or DEFAULT_OUTPUT_DIR
    # The run writes under a staging folder of its own, swapped in for the previous run's outputs
    # only once it succeeded (transforms/write/output_folder.py): a failed or killed run leaves the
    # previous outputs whole, and two runs into one folder are refused by its lock.
    run_id = uuid.uuid4().hex
    staging = output_folder.staging_dir(output_dir, run_id)
    patterns, _ = resolve_inputs(detection)
    inputs = list_inputs(patterns)
    build(pipeline, options, staging)
    with output_folder.OutputLock(output_dir, run_id) as lock:
        if lock.taken_over:
            logging.warning('Took over the lock of %s, whose run is gone.', lock.describe(lock.taken_over))
        output_folder.recover(output_dir)
        output_folder.clear_leftovers(output_dir)
        try:
            progress.reset()
            with console.Progress(inputs, reads_here=reads_in_this_process(options)):
                result = pipeline.run()
                state = result.wait_until_finish()
            if state is not None and state != PipelineState.DONE:
                raise RuntimeError('the pipeline ended in state %s; the outputs of %s are left as they were'
                                   % (state, output_dir))
            if detection.baseline_out:
                update_baseline(detection, load_rule(detection.rule), staging)
            summary = counters(result)
            if options.view_as(SinkOptions).report:
                write_run_report(summary, staging, published_dir=output_dir, inputs=inputs,
                                 options=options_used(options), stored_fingerprints=stored_fingerprints(detection))
            output_folder.publish(output_dir, staging)
        except BaseException:
            _discard(staging)
            raise
    print_outcome(summary, output_dir)
    return result


def exit_on_sigterm():
    """Make SIGTERM (how schedulers and supervisors stop a process) end this process the way Ctrl-C
    or a normal exit does, with its exit handlers: Beam stops the job server it started in one of
    them, which SIGTERM's default action would leave running."""
    def _exit(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _exit)


def reads_in_this_process(options):
    """Whether the runner reads the inputs in this process (the in-process runner, in memory or in
    threads), so that the read step's progress is seen here."""
    from apache_beam.options.pipeline_options import DirectOptions  # pylint: disable=import-outside-toplevel
    direct = options.view_as(DirectOptions)
    return (options.view_as(StandardOptions).runner == IN_PROCESS_RUNNER
            and (direct.direct_running_mode or 'in_memory') in ('in_memory', 'multi_threading'))


def options_used(options):
    """The options of the run, as JSON values: every detection and output option with its value,
    defaults included (not the streaming ones), and any other option the command line gave."""
    used = dict(options.get_all_options(drop_default=True))
    for view in (DetectionOptions, SinkOptions):
        parser = argparse.ArgumentParser(add_help=False)
        view._add_argparse_args(parser)  # pylint: disable=protected-access
        for action in parser._actions:  # pylint: disable=protected-access
            value = getattr(options.view_as(view), action.dest, None)
            if value is not None and action.dest not in STREAMING_OPTIONS:
                used[action.dest] = value
    return {name: value if isinstance(value, (str, int, float, bool)) else str(value)
            for name, value in sorted(used.items())}


def stored_fingerprints(detection):
    """{fingerprint: store record} of --baseline_in, or None without one."""
    if not detection.baseline_in:
        return None
    semantics = semantics_of(detection)
    records = baseline.read_store(detection.baseline_in, load_rule(detection.rule).id, semantics.name)
    return {record['fingerprint']: record for record in records}


def output_files(output_dir):
    """The run's files in the output folder, by name."""
    patterns = [FileSystems.join(output_dir, prefix + '-*') for prefix in OUTPUT_PREFIXES]
    patterns += [FileSystems.join(output_dir, name) for name in RUN_REPORT_FILES]
    found = []
    for result in FileSystems.match(patterns):
        found.extend(metadata.path for metadata in result.metadata_list)
    return sorted(set(found))


def print_outcome(summary, output_dir, stream=None):
    """The end of a run on the console: counts per table and stage, windows, alerts, output files."""
    stream = stream or sys.stdout
    print_summary(summary, output_dir, stream)
    windows = sorted(read_json_lines_output(output_dir, WINDOW_FILES),
                     key=lambda w: (w['QueryPeriodStart'], w['QueryPeriodEnd']))
    files = output_files(output_dir)
    alert_files = [path for path in files if path.rsplit('/', 1)[-1].startswith(ALERT_FILES + '-')]
    # The JSON lines when the run wrote them, else the Avro files (the same alerts)
    alert_files = [path for path in alert_files if path.endswith('.jsonl')] or alert_files
    window_files = [path for path in files if path.rsplit('/', 1)[-1].startswith(WINDOW_FILES + '-')]
    outside = sum(summary.get(table, {}).get('outside_range', 0) for table in TABLES)
    lines = console.window_lines(windows, window_files, outside)
    lines += console.alert_lines(read_alerts(alert_files), alert_files)
    lines += console.dead_letter_lines(summary, [path for path in files
                                                 if path.rsplit('/', 1)[-1].startswith(DEAD_LETTER_FILES + '-')])
    lines += console.output_lines(output_dir, files)
    stream.write('\n'.join(lines) + '\n')


def check_batch_options(detection):
    """UsageError (or BaselineError) before any work, for every mistake a batch run's options can hold."""
    patterns = {table: getattr(detection, name) for table, name in TABLE_OPTIONS.items()}
    rule = check_batch_run(detection, patterns, TABLE_OPTIONS, detection.output_dir or DEFAULT_OUTPUT_DIR)
    try:
        query_windows(detection, rule, semantics_of(detection))
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_baseline_options(detection)


def _discard(staging):
    try:
        if FileSystems.exists(staging):
            FileSystems.delete([staging])
    except Exception:  # pylint: disable=broad-except  # the next run clears it
        logging.warning('Could not delete %s; the next run into the folder will.', staging)


def read_json_lines_output(output_dir, prefix):
    """The records of ``<output_dir>/<prefix>-*.jsonl`` (for the console summary of a run)."""
    matches = FileSystems.match([FileSystems.join(output_dir, prefix + '-*.jsonl')])[0].metadata_list
    for metadata in sorted(matches, key=lambda m: m.path):
        with FileSystems.open(metadata.path) as handle:
            for line in handle.read().decode('utf-8').splitlines():
                yield json.loads(line)


# A user's mistake, or something the run needs that is not there: one line and exit status 2.
USAGE_ERRORS = (UsageError, PreflightError, UnreadableInput, output_folder.FolderLocked, baseline.BaselineError)


def quiet_libraries(debug):
    """Warnings of the libraries (Beam's, Python's) only with --debug: a plain run shows the tool's own lines."""
    logging.getLogger().setLevel(logging.WARNING)
    if not debug:
        logging.getLogger('apache_beam').setLevel(logging.ERROR)
        warnings.filterwarnings('ignore')


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv
    quiet_libraries(debug)
    try:
        if argv[:1] == ['inspect']:
            from pipelines.inspect_inputs import inspect  # pylint: disable=import-outside-toplevel
            if '-h' in argv or '--help' in argv:
                print_help(prog='rare-runcommand inspect')
                return
            sys.exit(inspect([arg for arg in argv[1:] if arg != '--debug']))
        run(argv)
    except USAGE_ERRORS as error:
        if debug:
            raise
        sys.stderr.write('rare-runcommand: error: %s\n' % error)
        sys.exit(2)
    except Exception as error:  # pylint: disable=broad-except  # not the user's mistake: --debug tells more
        if debug:
            raise
        sys.stderr.write('rare-runcommand: the run failed: %s: %s (run again with --debug for the traceback)\n'
                         % (type(error).__name__, str(error).strip().splitlines()[0] if str(error).strip() else ''))
        sys.exit(1)


if __name__ == '__main__':
    # Through the module's import name: what the pipeline pickles then refers to
    # `pipelines.rare_runcommand`, which every worker can import, not to this `__main__`.
    from pipelines import rare_runcommand
    from pipelines.beam_overheads import run_as_command
    run_as_command(rare_runcommand.main)  # this process ends after the run: see pipelines/beam_overheads.py
