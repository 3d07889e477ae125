"""Pipeline options of the detection: every flag a user types, and every Flex Template parameter."""

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.detect.semantics import NAMES as SEMANTICS
from transforms.read.formats import INPUT_FORMATS

SCAN_MODES = ('full', 'relevant')
DETECT_GROUPINGS = ('window', 'stages')

# Beam's in-process portable runner, by its import path: Beam 2.62 does not know it by its short name.
IN_PROCESS_RUNNER = 'apache_beam.runners.portability.fn_api_runner.FnApiRunner'


class DetectionOptions(PipelineOptions):
    """Options of ``python -m pipelines.rare_runcommand``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        inputs = parser.add_argument_group('inputs')
        inputs.add_argument(
            '--azure_activity', default=None,
            help='File pattern of AzureActivity exports (Beam FileSystems syntax: *, ** across folders, '
                 'gs://, plain or .gz). The three tables are all needed; each pattern must match a file.')
        inputs.add_argument(
            '--device_file_events', default=None, help='File pattern of DeviceFileEvents exports.')
        inputs.add_argument(
            '--device_events', default=None, help='File pattern of DeviceEvents exports.')
        inputs.add_argument(
            '--sample', action='store_true', default=False,
            help='Run on the bundled sample day of a tenant instead of input patterns.')
        inputs.add_argument(
            '--input_format', choices=INPUT_FORMATS, default='auto',
            help='Force one export format for every input file; auto detects it per file.')
        inputs.add_argument(
            '--scan', choices=SCAN_MODES, default='full',
            help='full: parse and validate every record (every bad record is dead-lettered); '
                 'relevant: skip, unparsed, records that a byte-level prefilter proves irrelevant to the '
                 'rule (much faster; skipped records are counted, not validated).')

        detection = parser.add_argument_group('detection')
        detection.add_argument(
            '--semantics', choices=SEMANTICS, default='sentinel',
            help="sentinel: exactly the rule's KQL, quirks included; strict: the rule as its description "
                 'means it (see the README).')
        detection.add_argument(
            '--detect_grouping', choices=DETECT_GROUPINGS, default='window',
            help="window: each query window's Run Command rows are folded before the shuffle and evaluated "
                 'together (one grouping; fastest); stages: one grouping per stage of the query, for windows '
                 "whose Run Command sessions, script files and cmdlets do not fit one worker's memory. Same "
                 'alerts either way.')
        detection.add_argument(
            '--strict_operations', default=None,
            help='Strict semantics: comma-separated ARM operations that run a script through Run Command '
                 '(default: the action and managed forms on VMs and scale-set VMs, and Azure Arc machines).')
        detection.add_argument(
            '--strict_process_names', default=None,
            help='Strict semantics: comma-separated guest processes that write the downloaded script '
                 '(default: RunCommandExtension.exe,RunCommandHandlerWindows.exe).')
        detection.add_argument(
            '--strict_max_run_delay', default=None,
            help='Strict semantics: Kusto timespan: how long after its session\'s end a script run (its PowerShell '
                 'process) may start and still belong to the session (default 1h).')
        detection.add_argument(
            '--strict_look_ahead', default=None,
            help='Strict semantics: Kusto timespan: how far before and after each query window rows are read, so '
                 'that a session starting in the window is seen whole with its script run; at least '
                 '--strict_max_run_delay (default 3h).')
        detection.add_argument(
            '--strict_scale_set_prefixes', default=None,
            help='Strict semantics: comma-separated scaleSetName=computerNamePrefix pairs (a scale set may have '
                 'several) giving the computer name prefix of uniform scale sets whose prefix is not the default '
                 '(the scale set name, or the Azure CLI\'s default). Example: web-ss=webss,api-ss=api')
        detection.add_argument(
            '--history_days', type=int, default=0,
            help='Alert on a fingerprint only if it was not seen in the N days before the window '
                 '(earlier windows of the run and --baseline_in). 0 (default) turns the baseline off.')
        detection.add_argument(
            '--baseline_in', default=None,
            help='Fingerprint store (JSON lines or .avro) from earlier runs, read for --history_days.')
        detection.add_argument(
            '--baseline_init', nargs='?', const='true', choices=('false', 'true'), default='false',
            help='The first run of a baseline: --baseline_in may be missing (read as empty). Without it a '
                 'missing --baseline_in is an error, and so is replacing an existing --baseline_out without '
                 'reading a store.')
        detection.add_argument(
            '--baseline_out', default=None,
            help='Where to write the updated fingerprint store (JSON lines, or Avro for a .avro path); '
                 'replaced only when the run succeeds.')
        detection.add_argument(
            '--rule', default=None,
            help='A Sentinel analytic rule YAML whose metadata (name, severity, tactics, techniques, '
                 'entity mappings, queryPeriod, queryFrequency, trigger) the alerts use. '
                 'Default: the rule metadata bundled with the package.')
        detection.add_argument(
            '--query_period', default=None,
            help='Kusto timespan (5m, 2h, 1d, 2d) of data each evaluation sees; default: the rule\'s queryPeriod.')
        detection.add_argument(
            '--query_frequency', default=None,
            help="Kusto timespan between evaluations; default: the rule's queryFrequency.")
        detection.add_argument(
            '--window_offset', default=None,
            help='Kusto timespan shifting window starts from UTC midnight (e.g. 6h); default 0.')
        detection.add_argument(
            '--start', default=None,
            help='ISO 8601 start of a backfill: only windows starting at or after it are evaluated.')
        detection.add_argument(
            '--end', default=None,
            help='ISO 8601 end of a backfill: only windows ending at or before it are evaluated.')

        stream = parser.add_argument_group('streaming (with Beam\'s --streaming)')
        stream.add_argument(
            '--input_subscription_azure_activity', default=None,
            help='Pub/Sub subscription (projects/P/subscriptions/S) of AzureActivity messages, each holding '
                 'any JSON shape of the batch formats (a row, a records envelope, an Activity Log record).')
        stream.add_argument(
            '--input_subscription_device_file_events', default=None,
            help='Pub/Sub subscription of DeviceFileEvents messages.')
        stream.add_argument(
            '--input_subscription_device_events', default=None,
            help='Pub/Sub subscription of DeviceEvents messages.')
        stream.add_argument(
            '--allowed_lateness', default='1h',
            help='Kusto timespan: how long after a window\'s end late rows still re-evaluate it (default 1h); '
                 'later rows go to the dead letter with reason "late".')
        stream.add_argument(
            '--alerts_topic', default=None,
            help='Pub/Sub topic (projects/P/topics/T) receiving the alerts of a streaming run.')
        stream.add_argument(
            '--dead_letter_topic', default=None,
            help='Pub/Sub topic receiving the dead letters of a streaming run.')

        outputs = parser.add_argument_group('outputs')
        outputs.add_argument(
            '--output_dir', default=None,
            help='Directory (local or gs://) for alerts-*.jsonl, dead_letter-*.jsonl and the run summary. '
                 'Default: ./rare_runcommand_output.')
        outputs.add_argument(
            '--debug', action='store_true', default=False,
            help='On an error, print the traceback (for a bug report) and the warnings of the libraries, '
                 'instead of one line.')
