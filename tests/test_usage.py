"""Usage errors: each stops the command before any work, in one line, with exit status 2, and writes
nothing to the output folder; --debug shows the traceback instead."""

import pytest

from pipelines import rare_runcommand, usage
from pipelines.rare_runcommand import SAMPLE_DIR

SAMPLE = ['--azure_activity', SAMPLE_DIR + '/AzureActivity.jsonl.gz',
          '--device_file_events', SAMPLE_DIR + '/DeviceFileEvents.jsonl.gz',
          '--device_events', SAMPLE_DIR + '/DeviceEvents.jsonl.gz']


def refused(capsys, argv):
    """The one line the command printed for `argv`, after checking its exit status."""
    with pytest.raises(SystemExit) as exit_info:
        rare_runcommand.main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err.count('\n') == 1 and 'Traceback' not in captured.err, captured.err
    assert captured.err.startswith('rare-runcommand: error: ')
    return captured.err[len('rare-runcommand: error: '):].rstrip('\n')


@pytest.fixture
def output(tmp_path):
    """An output folder that must stay absent."""
    folder = tmp_path / 'out'
    yield folder
    assert not folder.exists()


def test_an_unknown_option_names_the_closest_one(capsys, output):
    line = refused(capsys, ['--azur_activity', 'x.jsonl', '--output_dir', str(output)] + SAMPLE[2:])
    assert line == 'unknown option --azur_activity (did you mean --azure_activity?)'


def test_an_unknown_option_without_a_close_one_points_at_help(capsys, output):
    line = refused(capsys, ['--sample', '--zzzzzz=1', '--output_dir', str(output)])
    assert line == 'unknown option --zzzzzz; --help lists the options'


def test_a_stray_value_is_refused(capsys, output):
    assert refused(capsys, ['--sample', 'today', '--output_dir', str(output)]).startswith(
        "unexpected argument 'today'")


def test_a_bad_choice_is_one_line(capsys, output):
    line = refused(capsys, ['--sample', '--semantics', 'loose', '--output_dir', str(output)])
    assert line.startswith("argument --semantics: invalid choice: 'loose'")


def test_no_input_says_how_to_run_the_sample(capsys, output):
    line = refused(capsys, ['--output_dir', str(output)])
    assert line.startswith('no input: give --azure_activity, --device_file_events and --device_events')
    assert line.endswith('or --sample to run on the bundled sample day')


def test_a_missing_table_is_refused(capsys, output):
    line = refused(capsys, SAMPLE[:4] + ['--output_dir', str(output)])
    assert line.startswith('--device_events missing: the rule joins all three tables')


def test_the_sample_does_not_mix_with_inputs(capsys, output):
    line = refused(capsys, ['--sample'] + SAMPLE[:2] + ['--output_dir', str(output)])
    assert line == '--sample runs on the bundled sample day; it cannot be combined with --azure_activity'


def test_a_pattern_that_matches_no_file(capsys, output, tmp_path):
    pattern = str(tmp_path / 'exports' / 'DeviceEvents' / '*.json')
    line = refused(capsys, SAMPLE[:4] + ['--device_events', pattern, '--output_dir', str(output)])
    assert line == '--device_events %s matches no file' % pattern


def test_start_not_before_end(capsys, output):
    line = refused(capsys, ['--sample', '--start', '2024-06-01', '--end', '2024-03-01', '--output_dir', str(output)])
    assert line == '--start 2024-06-01 is not before --end 2024-03-01: no window would be evaluated'


def test_an_unparsable_start(capsys, output):
    assert refused(capsys, ['--sample', '--start', 'June', '--output_dir', str(output)]) == (
        "--start: not an ISO 8601 datetime: 'June'")


@pytest.mark.parametrize('option,value', [('query_period', '4m'), ('query_period', '15d'),
                                          ('query_frequency', '1m'), ('query_frequency', '30d')])
def test_a_timespan_outside_what_sentinel_schedules(capsys, output, option, value):
    line = refused(capsys, ['--sample', '--' + option, value, '--query_period', '1d', '--output_dir', str(output)]
                   if option == 'query_frequency' else ['--sample', '--' + option, value, '--output_dir', str(output)])
    assert line == '--%s %s is outside what Microsoft Sentinel schedules: 5m to 14d' % (option, value)


def test_the_range_bounds_are_accepted():
    class Detection:  # pylint: disable=too-few-public-methods
        query_period, query_frequency, window_offset = '14d', '5m', None
        strict_max_run_delay = strict_look_ahead = allowed_lateness = None
    usage.check_timespans(Detection, rule=None)


def test_an_unparsable_timespan(capsys, output):
    assert refused(capsys, ['--sample', '--query_period', 'daily', '--output_dir', str(output)]).startswith(
        "--query_period: not a Kusto timespan: 'daily'")


def test_a_period_shorter_than_the_frequency(capsys, output):
    line = refused(capsys, ['--sample', '--query_period', '1h', '--query_frequency', '1d', '--output_dir',
                            str(output)])
    assert line.startswith('--query_period 1h is shorter than --query_frequency 1d')


def test_a_rule_that_does_not_validate(capsys, output, tmp_path):
    rule = tmp_path / 'rule.yaml'
    rule.write_text('name: x\nqueryPeriod: 1d\n')
    line = refused(capsys, ['--sample', '--rule', str(rule), '--output_dir', str(output)])
    assert line.startswith('--rule: %s: ' % rule)


def test_the_output_check_leaves_no_folder_behind(capsys, tmp_path):
    # The output folder is checked, then the baseline store is found missing: no folder is left.
    refused(capsys, ['--sample', '--output_dir', str(tmp_path / 'a' / 'b' / 'out'), '--history_days', '1',
                     '--baseline_in', str(tmp_path / 'store.jsonl')])
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file(capsys, tmp_path):
    target = tmp_path / 'out'
    target.write_text('mine')
    assert refused(capsys, ['--sample', '--output_dir', str(target)]) == '--output_dir %s is a file, not a folder' % target
    assert target.read_text() == 'mine'


def test_an_output_folder_that_cannot_be_created(capsys, tmp_path):
    parent = tmp_path / 'file'
    parent.write_text('mine')
    line = refused(capsys, ['--sample', '--output_dir', str(parent / 'out')])
    assert line == '--output_dir %s cannot be written: Not a directory' % (parent / 'out')


def test_a_read_only_output_folder(capsys, tmp_path):
    # /proc refuses new entries even to root, for whom permission bits do not apply.
    assert refused(capsys, ['--sample', '--output_dir', '/proc/rare-runcommand-out']).startswith(
        '--output_dir /proc/rare-runcommand-out cannot be written: ')


def test_an_unknown_sink(capsys, output):
    assert refused(capsys, ['--sample', '--sinks', 'jsonl,kusto', '--output_dir', str(output)]).startswith(
        "--sinks: unknown sink(s) 'kusto'")


def test_an_unknown_runner(capsys, output):
    assert refused(capsys, ['--sample', '--runner', 'Foo', '--output_dir', str(output)]).startswith(
        '--runner: Unexpected pipeline runner: Foo.')


def test_debug_shows_the_traceback(output):
    with pytest.raises(usage.UsageError, match='matches no file'):
        rare_runcommand.main(SAMPLE[:4] + ['--device_events', '/nonexistent/*', '--debug', '--output_dir', str(output)])


def test_a_remote_runner_gets_options_its_job_server_may_know_but_not_typos():
    usage.check_arguments(['--runner', 'FlinkRunner', '--max_bundle_size', '5', '--sample'])
    with pytest.raises(usage.UsageError, match=r'unknown option --outputdir \(did you mean --output_dir\?\)'):
        usage.check_arguments(['--runner', 'FlinkRunner', '--outputdir', 'out'])
    with pytest.raises(usage.UsageError, match='unknown option --max_bundle_size'):
        usage.check_arguments(['--max_bundle_size', '5', '--sample'])
