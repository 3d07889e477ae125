"""How many processes a local (in-process runner) batch run uses when the command line does not say.

A run reads its inputs in parallel when there are enough of them to pay for the start of the worker
processes and for every stage's elements crossing process boundaries: with at least
`PARALLEL_INPUT_BYTES` of input, the run uses one worker process per core
(``--direct_running_mode=multi_processing --direct_num_workers=<cores>``); below it, or on one
core, one process. Workers forked from the command's process (`pipelines.forked_workers`) start in
milliseconds and pay from `FORKED_PARALLEL_INPUT_BYTES`; started afresh, each imports Beam (about
a second) and they pay from `PARALLEL_INPUT_BYTES`. ``--direct_num_workers`` or
``--direct_running_mode`` on the command line always win. benchmarks/README.md gives the
measurements behind the thresholds.

The worker processes get the pipeline's options (`in_process_runner`), as the workers of a portable
runner do: Beam's in-process runner starts them with none, so they ran with Beam's defaults whatever
the command line said (they pickled with dill when the command had chosen cloudpickle: 1.3 s of CPU
in the two workers of a realistic 10M run, py-spy).
"""

import logging
import os

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PortableOptions
from apache_beam.portability.api import beam_provision_api_pb2

from pipelines.usage import flags_given

# Inputs of at least this many bytes (all tables) are read by one worker process per core.
PARALLEL_INPUT_BYTES = 1 << 30
FORKED_PARALLEL_INPUT_BYTES = 1 << 29
_OWN_FLAGS = {'--direct_num_workers', '--direct_running_mode'}


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def input_bytes(patterns):
    """The total size of the files matching `patterns` (None when a pattern cannot be listed)."""
    total = 0
    try:
        for result in FileSystems.match([pattern for pattern in patterns if pattern]):
            total += sum(metadata.size_in_bytes for metadata in result.metadata_list)
    except Exception:  # pylint: disable=broad-except  # the read step reports unlistable patterns
        return None
    return total


def choose_workers(argv, patterns, available_cores=None, size=None, forked=None):
    """The number of worker processes of a local run of `argv` over `patterns`: None when the
    command line chose (or one process is best), else the number of cores. `forked`: whether the
    workers would be forked (`pipelines.forked_workers.forking_is_safe` when None)."""
    if flags_given(argv) & _OWN_FLAGS:
        return None
    available_cores = cores() if available_cores is None else available_cores
    if available_cores < 2:
        return None
    if forked is None:
        from pipelines.forked_workers import forking_is_safe  # pylint: disable=import-outside-toplevel
        forked = forking_is_safe()
    size = input_bytes(patterns) if size is None else size
    if size is None or size < (FORKED_PARALLEL_INPUT_BYTES if forked else PARALLEL_INPUT_BYTES):
        return None
    return available_cores


def apply_default_workers(options, argv, patterns):
    """Sets `options` to one worker process per core when `choose_workers` says so."""
    workers = choose_workers(argv, patterns)
    if workers:
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode = 'multi_processing'
        direct.direct_num_workers = workers
        logging.info('%d worker processes (the input is large; --direct_num_workers sets another number)', workers)
    return workers


def workers_share_this_process(options):
    """Whether every SDK worker of a run of `in_process_runner(options)` is this process or forked
    from it: always, unless the run asks for worker processes where forking is not safe (Beam then
    starts its own worker command). A run that names an SDK environment itself is answered no too,
    though the in-process runner uses its own: such a run keeps Beam's defaults."""
    from pipelines import forked_workers  # pylint: disable=import-outside-toplevel
    if options.view_as(PortableOptions).environment_type:
        return False
    return (options.view_as(DirectOptions).direct_running_mode != 'multi_processing'
            or forked_workers.forking_is_safe())


def in_process_runner(options):
    """Beam's in-process runner (`FnApiRunner`) whose worker processes, in ``multi_processing``
    mode, read `options` (encoded as a portable runner encodes them for its workers) and are forked
    from this process when it is safe (`pipelines.forked_workers`); in one process the options are
    those of the process already."""
    # pylint: disable=import-outside-toplevel  # the runner's modules, only when it runs
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo, FnApiRunner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    from pipelines import forked_workers
    provision = beam_provision_api_pb2.ProvisionInfo(
        retrieval_token='unused-retrieval-token',
        pipeline_options=JobServiceHandle.encode_pipeline_options(options.get_all_options()))
    if options.view_as(DirectOptions).direct_running_mode == 'multi_processing' and forked_workers.forking_is_safe():
        return forked_workers.ForkedWorkersRunner(provision_info=ExtendedProvisionInfo(provision))
    return FnApiRunner(provision_info=ExtendedProvisionInfo(provision))
