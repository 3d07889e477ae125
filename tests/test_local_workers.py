"""The number of worker processes of a local run when the command line does not choose it."""

import os

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from pipelines import local_workers
from pipelines.local_workers import (FORKED_PARALLEL_INPUT_BYTES, PARALLEL_INPUT_BYTES, apply_default_workers,
                                     choose_workers, in_process_runner, input_bytes)


def test_a_large_input_uses_every_core_and_a_small_one_one_process():
    for forked in (True, False):
        assert choose_workers([], [], available_cores=4, size=PARALLEL_INPUT_BYTES, forked=forked) == 4
        assert choose_workers([], [], available_cores=2, size=10 * PARALLEL_INPUT_BYTES, forked=forked) == 2
        assert choose_workers([], [], available_cores=4, size=FORKED_PARALLEL_INPUT_BYTES - 1, forked=forked) is None
        assert choose_workers([], [], available_cores=1, size=10 * PARALLEL_INPUT_BYTES, forked=forked) is None


def test_forked_workers_pay_from_a_smaller_input():
    assert FORKED_PARALLEL_INPUT_BYTES < PARALLEL_INPUT_BYTES
    assert choose_workers([], [], available_cores=2, size=FORKED_PARALLEL_INPUT_BYTES, forked=True) == 2
    assert choose_workers([], [], available_cores=2, size=PARALLEL_INPUT_BYTES - 1, forked=False) is None


def test_the_command_line_chooses_first():
    for argv in (['--direct_num_workers=1'], ['--direct_num_workers', '3'], ['--direct_running_mode=in_memory']):
        assert choose_workers(argv, [], available_cores=4, size=10 * PARALLEL_INPUT_BYTES) is None


def test_input_bytes_sums_every_matching_file_and_an_unlistable_pattern_decides_nothing(tmp_path):
    (tmp_path / 'a.jsonl').write_bytes(b'x' * 10)
    (tmp_path / 'b.jsonl').write_bytes(b'x' * 5)
    assert input_bytes([str(tmp_path / '*.jsonl'), None, str(tmp_path / 'none*')]) == 15
    assert input_bytes(['nosuchscheme://bucket/*']) is None
    assert choose_workers([], ['nosuchscheme://bucket/*'], available_cores=4) is None


def test_the_options_get_one_worker_process_per_core(monkeypatch):
    monkeypatch.setattr(local_workers, 'cores', lambda: 3)
    monkeypatch.setattr(local_workers, 'input_bytes', lambda patterns: 2 * PARALLEL_INPUT_BYTES)
    options = PipelineOptions([])
    assert apply_default_workers(options, [], ['x']) == 3
    direct = options.view_as(DirectOptions)
    assert (direct.direct_running_mode, direct.direct_num_workers) == ('multi_processing', 3)
    options = PipelineOptions(['--direct_num_workers=1'])
    assert apply_default_workers(options, ['--direct_num_workers=1'], ['x']) is None
    assert options.view_as(DirectOptions).direct_num_workers == 1


@pytest.mark.slow  # starts a worker process
def test_the_worker_processes_read_the_pipelines_options(tmp_path):
    """A worker of multi_processing mode pickles with the library the options chose (Beam's own
    in-process runner starts its workers with no options: they would use dill)."""
    options = PipelineOptions(['--direct_running_mode=multi_processing', '--direct_num_workers=1',
                               '--pickle_library=cloudpickle'])
    pipeline = beam.Pipeline(runner=in_process_runner(options), options=options)
    (pipeline
     | beam.Create([0])
     | beam.Map(lambda _: '%d %s' % (os.getpid(), pickler.desired_pickle_lib.__name__))
     | beam.io.WriteToText(str(tmp_path / 'probe')))
    pipeline.run().wait_until_finish()
    [line] = [line for path in tmp_path.glob('probe*') for line in path.read_text().split('\n') if line]
    pid, library = line.split()
    assert int(pid) != os.getpid(), 'the stage ran in this process, not in a worker'
    assert library == 'apache_beam.internal.cloudpickle_pickler'
