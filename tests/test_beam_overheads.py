"""The Beam overheads `pipelines.beam_overheads` avoids, and that avoiding them changes nothing."""

import base64
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions, SetupOptions, StandardOptions,
                                                  TypeOptions)

from apache_beam.transforms import userstate

from pipelines import beam_overheads, rare_runcommand
from pipelines.beam_overheads import OptionsWithViews
from pipelines.options import DetectionOptions

ROOT = Path(__file__).resolve().parents[1]
ARGV = ['--azure_activity', 'a/*.jsonl', '--output_dir', 'out', '--runner', 'DirectRunner']


def test_each_view_is_built_once_and_shares_the_values_of_every_other():
    options = OptionsWithViews(ARGV)
    standard = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is standard
    assert options.view_as(DetectionOptions).azure_activity == 'a/*.jsonl'
    options.view_as(DirectOptions).direct_num_workers = 3
    assert options.view_as(DirectOptions).direct_num_workers == 3
    assert PipelineOptions.view_as(options, DirectOptions).direct_num_workers == 3  # a view built anew
    standard.runner = 'Other'
    assert options.view_as(StandardOptions).runner == 'Other'


def test_the_options_read_as_plain_options_do_and_pickle_without_their_views():
    options, plain = OptionsWithViews(ARGV), PipelineOptions(ARGV)
    for cls in (StandardOptions, TypeOptions, DetectionOptions):
        options.view_as(cls)
    assert options.get_all_options() == plain.get_all_options()
    copy = pickle.loads(pickle.dumps(options))
    assert '_views' not in copy.__dict__
    assert copy.view_as(DetectionOptions).output_dir == 'out'


def test_building_a_pipeline_does_not_import_ipython():
    pytest.importorskip('IPython')  # without IPython there is nothing to avoid
    code = ('import sys\n'
            'import apache_beam as beam\n'
            'from pipelines.beam_overheads import skip_ipython_probe\n'
            'skip_ipython_probe()\n'
            'pipeline = beam.Pipeline()\n'
            '_ = pipeline | beam.Create([1]) | beam.Map(str)\n'
            'assert "IPython" not in sys.modules, "IPython was imported"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


class _Stateful(beam.DoFn):
    STATE = userstate.BagStateSpec('seen', beam.coders.StrUtf8Coder())
    TIMER = userstate.TimerSpec('flush', beam.TimeDomain.WATERMARK)

    def process(self, element, seen=beam.DoFn.StateParam(STATE), flush=beam.DoFn.TimerParam(TIMER)):
        yield element

    @userstate.on_timer(TIMER)
    def on_flush(self):
        yield None


def test_the_specs_of_a_dofn_are_computed_once_per_object_and_stay_what_beam_says(monkeypatch):
    stateful, plain = _Stateful(), beam.Map(str).fn
    calls = []
    original = userstate.get_dofn_specs

    def counted(dofn):
        calls.append(dofn)
        return original(dofn)
    monkeypatch.setattr(userstate, 'get_dofn_specs', counted)
    beam_overheads.cache_dofn_specs()
    for dofn in (stateful, plain, stateful, plain, stateful):
        specs = userstate.get_dofn_specs(dofn)
        assert specs == original(dofn)
        specs[0].clear()  # the caller's own sets
    assert calls == [stateful, plain]
    assert userstate.is_stateful_dofn(stateful) and not userstate.is_stateful_dofn(plain)
    assert len(calls) == 2
    copy = pickle.loads(pickle.dumps(stateful))
    assert userstate.get_dofn_specs(copy) == original(stateful) and calls[-1] is copy


FREEZE_PROBE = '''
import gc, runpy, sys
gc.disable()  # no collection by chance: an object is frozen, or still among the collected generations
from pipelines import cli, rare_runcommand
seen, made = [], []
def run():  # stands for the run: notes the frozen count, leaves a cycle of its own behind
    seen.append(gc.get_freeze_count())
    cycle = []
    cycle.append(cycle)
    made.append(id(cycle))
rare_runcommand.main = run
if sys.argv[1] == 'cli':
    cli.main()
else:
    runpy.run_module('pipelines.rare_runcommand', run_name='__main__')
print(seen[0], gc.get_freeze_count(), any(id(o) == made[0] for o in gc.get_objects()))
'''


@pytest.mark.parametrize('entry', ['cli', 'module'])
def test_the_command_leaves_its_imports_and_its_run_out_of_garbage_collection(entry):
    """Both entry points (the console script and `python -m`) freeze the objects alive before the run
    (the imports) and those alive after it, so that neither the run's collections nor the last one at
    exit walk them; run in a process of its own, as the command is."""
    out = subprocess.run([sys.executable, '-c', FREEZE_PROBE, entry], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    before_run, still_tracked = int(out[0]), out[2]
    assert before_run > 10000  # the imports of Beam and of the detection
    assert still_tracked == 'False'  # what the run left behind, frozen too


@pytest.mark.parametrize('argv, expected', [
    ([], 'cloudpickle'),
    (['--pickle_library=dill'], 'dill'),
    (['--pickle_library', 'default'], 'default'),
])
def test_cloudpickle_is_the_pickler_unless_the_command_line_names_one(argv, expected):
    options = OptionsWithViews(argv)
    beam_overheads.prefer_cloudpickle(options, argv)
    assert options.view_as(SetupOptions).pickle_library == expected


def test_the_command_builds_its_pipeline_with_cloudpickle(tmp_path, monkeypatch):
    """What the run hands to Beam: the pipeline's options choose cloudpickle, which Beam's
    Pipeline then sets as the pickler of the graph's functions."""
    chosen = []
    original = beam.Pipeline.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        chosen.append(self._options.view_as(SetupOptions).pickle_library)  # pylint: disable=protected-access
    monkeypatch.setattr(beam.Pipeline, '__init__', record)
    rare_runcommand.run(['--sample', '--output_dir', str(tmp_path / 'out')])
    assert chosen == ['cloudpickle']


def _compression(encoded):
    """What compressed one of Beam's pickles: 'bzip2' or 'zlib'."""
    raw = base64.b64decode(encoded)
    if raw[:3] == b'BZh':
        return 'bzip2'
    zlib.decompress(raw)  # raises when it is not zlib either
    return 'zlib'


@pytest.mark.parametrize('library', ['cloudpickle', 'dill'])
def test_zlib_pickles_are_written_within_the_block_and_both_forms_read(library):
    from apache_beam.internal import pickler  # pylint: disable=import-outside-toplevel
    value = {'source': ('AzureActivity', 0, 1 << 20), 'f': len}
    pickler.set_library(library)
    try:
        before = pickler.dumps(value)
        assert _compression(before) == 'bzip2'
        with beam_overheads.zlib_pickles():
            inside = pickler.dumps(value)
            assert _compression(inside) == 'zlib'
            assert pickler.loads(inside) == value and pickler.loads(before) == value
            assert pickler.loads(inside.decode('ascii')) == value  # Beam passes text at times
        assert _compression(pickler.dumps(value)) == 'bzip2'
        with pytest.raises(ValueError), beam_overheads.zlib_pickles():
            raise ValueError('the run failed')
        assert _compression(pickler.dumps(value)) == 'bzip2'  # restored however the block ends
    finally:
        pickler.set_library(pickler.DEFAULT_PICKLE_LIB)


@pytest.mark.parametrize('argv, forking_safe, shared', [
    ([], False, True),  # one process (the in-process runner's default)
    (['--direct_num_workers=2', '--direct_running_mode=multi_threading'], False, True),
    (['--direct_num_workers=2', '--direct_running_mode=multi_processing'], True, True),  # forked workers
    (['--direct_num_workers=2', '--direct_running_mode=multi_processing'], False, False),  # Beam's own command
    (['--environment_type=PROCESS', '--environment_config={"command": "w"}'], True, False),
])
def test_the_workers_share_this_process_only_where_the_runner_forks_or_embeds_them(monkeypatch, argv, forking_safe,
                                                                                   shared):
    from pipelines import forked_workers, local_workers  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(forked_workers, 'forking_is_safe', lambda: forking_safe)
    assert local_workers.workers_share_this_process(PipelineOptions(argv)) is shared


def test_an_in_process_run_pickles_with_zlib_and_restores_bzip2(tmp_path, monkeypatch):
    from apache_beam.internal import pickler  # pylint: disable=import-outside-toplevel
    seen = []
    original = beam.Pipeline.run

    def record(self, *args, **kwargs):
        seen.append(_compression(pickler.dumps(('probe',))))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(beam.Pipeline, 'run', record)
    rare_runcommand.run(['--sample', '--output_dir', str(tmp_path / 'out')])
    assert seen == ['zlib']
    assert _compression(pickler.dumps(('probe',))) == 'bzip2'
    assert list((tmp_path / 'out').glob('alerts*.jsonl'))


@pytest.mark.slow  # two runs of the command, each a process of its own
def test_the_command_with_forked_workers_reads_its_zlib_pickles_and_raises_the_same_alerts(tmp_path):
    alerts = {}
    for name, extra in (('one', []), ('forked', ['--direct_running_mode=multi_processing',
                                                  '--direct_num_workers=2'])):
        out = tmp_path / name
        subprocess.run([sys.executable, '-m', 'pipelines.rare_runcommand', '--sample', '--output_dir', str(out)]
                       + extra, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, check=True, timeout=300)
        alerts[name] = sorted(line for path in out.glob('alerts*.jsonl') for line in path.read_text().splitlines())
    assert alerts['one'] and alerts['forked'] == alerts['one']
