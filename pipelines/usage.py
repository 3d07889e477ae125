"""Usage errors of the command line, found before any work: each is one line and exit status 2.

`check_arguments` refuses an option no options class knows (with the closest known one) and a bad
option value; `check_batch_run` refuses a run without inputs, an input pattern that matches no file,
a ``--start`` not before ``--end``, a query period or frequency outside what Microsoft Sentinel
schedules, a rule that does not validate and an output folder that cannot be written. The launcher
(`pipelines.rare_runcommand.main`) prints the message as ``rare-runcommand: error: <message>``.
"""

import argparse
import difflib
import os
import uuid

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

# Every options class the command line accepts must be imported before the parser is built.
from pipelines import kafka_options, options, sink_options  # noqa: F401  pylint: disable=unused-import
from transforms.detect.rule import RuleError, load_rule
from transforms.detect.windows import parse_instant, parse_timespan
from transforms.read.sources import matches_any_file

MINUTE_US = 60_000_000
# Microsoft Sentinel schedules a rule every 5 minutes to 14 days, over the last 5 minutes to 14 days
# ("Create a scheduled analytics rule", Query scheduling).
MIN_TIMESPAN_US = 5 * MINUTE_US
MAX_TIMESPAN_US = 14 * 24 * 60 * MINUTE_US
TIMESPAN_OPTIONS = ('query_period', 'query_frequency', 'window_offset', 'strict_max_run_delay', 'strict_look_ahead',
                    'allowed_lateness')
SCHEDULED_TIMESPANS = ('query_period', 'query_frequency')
SAMPLE_HINT = '--sample to run on the bundled sample day'


class UsageError(Exception):
    """A mistake in the command line: the message says which option and what to do."""


class _Parser(_BeamArgumentParser):
    def error(self, message):
        raise UsageError(message)


def option_parser():
    """A parser of every option of every PipelineOptions class (Beam's own and the detection's)."""
    parser = _Parser(allow_abbrev=False, add_help=False)
    classes = {}
    pending = list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        classes[cls.__module__ + '.' + cls.__qualname__] = cls
        pending.extend(cls.__subclasses__())
    for cls in classes.values():
        try:
            cls._add_argparse_args(parser)  # pylint: disable=protected-access
        except argparse.ArgumentError:
            continue  # a class of a test or a plugin declaring an option twice: the first one stands
    return parser


def known_options(parser):
    return sorted({option for action in parser._actions  # pylint: disable=protected-access
                   for option in action.option_strings if option.startswith('--')})


# Runners that run in this process: every option they get must be one that Python's options classes know.
LOCAL_RUNNERS = ('fnapirunner', 'fnapi', options.IN_PROCESS_RUNNER.lower(), 'directrunner', 'direct',
                 'bundlebaseddirectrunner', 'swalloweddirectrunner')
# How close an unknown option must be to a known one to be taken for its typo on a remote runner.
TYPO_SIMILARITY = 0.8


def flags_given(argv):
    """The ``--name`` options that `argv` gives, as ``--name value`` or ``--name=value``."""
    return {argument.split('=', 1)[0] for argument in argv if argument.startswith('--')}


def check_arguments(argv):
    """UsageError for an option that no options class knows, or a value its option refuses.

    On the in-process runner any unknown option is a mistake. A remote runner's job server may
    understand options that Python does not define (Beam passes them on), so there only an unknown
    option that is nearly a known one is refused, as the typo it most likely is."""
    parser = option_parser()
    known, unknown = parser.parse_known_args(list(argv))
    local = (known.runner or 'fnapirunner').lower() in LOCAL_RUNNERS
    names = known_options(parser)
    for argument in unknown:
        if argument.startswith('-'):
            name = argument.split('=', 1)[0]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6 if local else TYPO_SIMILARITY)
            if not local and not close:
                continue
            hint = ' (did you mean %s?)' % close[0] if close else '; --help lists the options'
            raise UsageError('unknown option %s%s' % (name, hint))
        if local:
            raise UsageError('unexpected argument %r: every value follows its option (--option value)' % argument)


def _timespan(name, text):
    try:
        return parse_timespan(text)
    except ValueError as error:
        raise UsageError('--%s: %s' % (name, error)) from None


def _format_us(value):
    for unit, size in (('d', 24 * 60 * MINUTE_US), ('h', 60 * MINUTE_US), ('m', MINUTE_US), ('s', 1_000_000)):
        if value >= size and value % size == 0:
            return '%d%s' % (value // size, unit)
    return '%gs' % (value / 1e6)


def check_timespans(detection, rule):
    """Each timespan option parses; query period and frequency are what Sentinel can schedule."""
    for name in TIMESPAN_OPTIONS:
        text = getattr(detection, name, None)
        if text:
            value = _timespan(name, text)
            if name in SCHEDULED_TIMESPANS and not MIN_TIMESPAN_US <= value <= MAX_TIMESPAN_US:
                raise UsageError('--%s %s is outside what Microsoft Sentinel schedules: 5m to 14d' % (name, text))
    period = _timespan('query_period', detection.query_period or rule.query_period)
    frequency = _timespan('query_frequency', detection.query_frequency or detection.query_period
                          or rule.query_frequency)
    if period < frequency:
        raise UsageError('--query_period %s is shorter than --query_frequency %s: rows between windows would '
                         'never be evaluated' % (_format_us(period), _format_us(frequency)))


def check_range(detection):
    """--start and --end parse, and --start is before --end."""
    bounds = {}
    for name in ('start', 'end'):
        text = getattr(detection, name)
        if text:
            try:
                bounds[name] = parse_instant(text)
            except ValueError as error:
                raise UsageError('--%s: %s' % (name, error)) from None
    if len(bounds) == 2 and bounds['start'] >= bounds['end']:
        raise UsageError('--start %s is not before --end %s: no window would be evaluated'
                         % (detection.start, detection.end))


def check_rule(detection):
    try:
        return load_rule(detection.rule)
    except RuleError as error:
        raise UsageError('--rule: %s' % error) from None


def check_inputs(patterns, table_options, sample):
    """Every table has a pattern that matches at least one file, or --sample and no pattern.

    `patterns`: {table: pattern or None}; `table_options`: {table: its option's name}."""
    given = {table_options[table]: pattern for table, pattern in patterns.items() if pattern}
    if sample:
        if given:
            raise UsageError('--sample runs on the bundled sample day; it cannot be combined with %s'
                             % ', '.join('--' + option for option in sorted(given)))
        return
    if not given:
        raise UsageError('no input: give --azure_activity, --device_file_events and --device_events (file '
                         'patterns of your exports), or %s' % SAMPLE_HINT)
    missing = [table_options[table] for table, pattern in patterns.items() if not pattern]
    if missing:
        raise UsageError('%s missing: the rule joins all three tables (an empty table would hide every alert)'
                         % ' and '.join('--' + option for option in missing))
    for table, pattern in patterns.items():
        if not matches_any_file(table, pattern):
            raise UsageError('--%s %s matches no file' % (table_options[table], pattern))


def check_output_dir(path):
    """The output folder is a folder this process can create files in (local paths; other file systems
    are checked by their first write)."""
    if '://' in path and not path.startswith('file://'):
        return
    local = path[len('file://'):] if path.startswith('file://') else path
    if os.path.exists(local) and not os.path.isdir(local):
        raise UsageError('--output_dir %s is a file, not a folder' % path)
    missing, folder = [], os.path.abspath(local)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    probe = os.path.join(local, '.rare-runcommand-probe-' + uuid.uuid4().hex)
    try:
        os.makedirs(local, exist_ok=True)
        with open(probe, 'wb'):
            pass
        os.remove(probe)
    except OSError as error:
        raise UsageError('--output_dir %s cannot be written: %s' % (path, error.strerror or error)) from None
    finally:
        for created in missing:  # made again by the run: a refused run leaves nothing behind
            try:
                os.rmdir(created)
            except OSError:
                break


def check_batch_run(detection, patterns, table_options, output_dir):
    """Every check of a batch run, the output folder last (the others write nothing); returns the rule."""
    check_inputs(patterns, table_options, detection.sample)
    check_range(detection)
    rule = check_rule(detection)
    check_timespans(detection, rule)
    check_output_dir(output_dir)
    return rule
