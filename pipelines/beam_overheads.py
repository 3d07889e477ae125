"""Costs of Beam's Python SDK when it builds and runs a pipeline, avoided without changing what it does.

* **Importing IPython to learn that this is not IPython.** `Pipeline.apply` asks
  `apache_beam.utils.interactive_utils.is_in_ipython()` for every top-level transform, which imports
  IPython whenever it is installed (0.45-0.6 s of CPU here) only to find no shell running.
  A running IPython shell has imported IPython before any pipeline code runs, so when IPython is not
  in `sys.modules` the answer is already known: `skip_ipython_probe` answers it then, and asks
  Beam's own test otherwise (same answer in both cases).
* **Parsing the command line again for every option view.** `PipelineOptions.view_as(cls)` builds
  an argument parser for `cls` and parses the flags each time it is called; `Pipeline.apply` calls
  it twice per transform (0.37 s of CPU for 400 views here). `OptionsWithViews` builds each view
  once: a view holds no state of its own (its values live in the dictionary every view of the
  object shares), so a view built once reads and writes exactly what a new one would.
* **Inspecting every DoFn again and again for state and timers.** `userstate.get_dofn_specs(dofn)`
  computes the signature of every method of the DoFn (about 30, most of them DoFn's own) to find
  state and timer parameters; Beam asks it several times for the same DoFn object (building the
  ParDo, translating it, creating its operation, its runner): 519 calls and 0.76 s of CPU in an
  in-process run of the detection. `cache_dofn_specs` answers again for a DoFn object it has
  answered for (by identity, while the object lives), with new sets as before.
* **Pickling the graph's functions with dill.** Beam pickles each DoFn, CombineFn and source
  of the graph several times while it builds and translates it (352 pickles for the detection):
  0.19 s with dill, Beam 2.62's default, against 0.11 s with cloudpickle, which Beam also ships
  and which its later releases made the default (the 2.69.0 release notes: dill "no longer a
  required, default dependency"). `prefer_cloudpickle` chooses cloudpickle unless the command line
  names a pickler; the workers of every runner read the choice from the pipeline's options.
* **Collecting garbage among objects that live as long as the process.** Importing Beam and the
  detection leaves about 100,000 objects that the cyclic garbage collector tracks (modules, classes, functions,
  protocol buffer descriptors); every full collection during the run walks them all again, and
  so does the last one when the interpreter exits (0.15 s here for `import apache_beam` alone).
  `freeze_process_objects` moves the objects alive at the time to the collector's permanent
  generation (`gc.freeze`): still freed by reference counting, no longer walked. The command
  calls it once its modules are imported and once its run is over, in its own process only (in a
  process that goes on, such as a test session, a cycle frozen there would never be freed).
* **Compressing every pickle with bzip2.** Beam's pickler compresses each pickled function and
  source with bzip2 at level 9 unless asked for zlib, and it pickles many small ones: the DoFns of
  the graph, and again each range of the input when the read splits its source (one restriction,
  the source pickled with its range, per range). bzip2's set-up of each call (its block sorting and
  Huffman tables) dominates for a pickle of a kilobyte: the stage that splits realistic 10M's three
  files into 81 ranges took 121-185 ms on one worker, while the other waited, against 37-46 ms with
  zlib (four runs each). `zlib_pickles` makes Beam's pickler write zlib (level 9) and read either
  form, for a run whose SDK workers are this process or forked from it
  (`pipelines.local_workers.workers_share_this_process`): no other process reads those pickles. A
  worker started afresh, or one of another runner, would read a zlib pickle as bzip2 and fail, so
  every other run keeps Beam's bzip2; and the pickler is restored when the run is over.
"""

import contextlib
import gc
import sys
import weakref

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from pipelines.usage import flags_given


def skip_ipython_probe():
    """Makes Beam's `is_in_ipython` answer False without importing IPython when IPython was never
    imported (no IPython shell can be running then); otherwise it asks as before. Idempotent."""
    from apache_beam import pipeline  # pylint: disable=import-outside-toplevel
    from apache_beam.utils import interactive_utils  # pylint: disable=import-outside-toplevel
    original = interactive_utils.is_in_ipython
    if getattr(original, 'probe_skipped', False):
        return
    def is_in_ipython():
        return 'IPython' in sys.modules and original()
    is_in_ipython.probe_skipped = True
    interactive_utils.is_in_ipython = is_in_ipython
    pipeline.is_in_ipython = is_in_ipython


def cache_dofn_specs():
    """Makes Beam's `userstate.get_dofn_specs` compute the specs of a DoFn object once (see the module
    docstring): the DoFns of a pipeline do not change their methods once built. Idempotent."""
    from apache_beam.transforms import userstate  # pylint: disable=import-outside-toplevel
    original = userstate.get_dofn_specs
    if getattr(original, 'cached', False):
        return
    known = {}  # id(dofn) -> (weak reference to it, its specs)

    def get_dofn_specs(dofn):
        entry = known.get(id(dofn))
        if entry is None or entry[0]() is not dofn:
            specs = original(dofn)
            try:
                key = id(dofn)
                known[key] = (weakref.ref(dofn, lambda _, key=key: known.pop(key, None)), specs)
            except TypeError:  # not weakly referable: asked again next time
                return specs
        else:
            specs = entry[1]
        return set(specs[0]), set(specs[1])
    get_dofn_specs.cached = True
    userstate.get_dofn_specs = get_dofn_specs


class OptionsWithViews(PipelineOptions):
    """`PipelineOptions` whose views are built once per options class (see the module docstring)."""

    def view_as(self, cls):
        views = self.__dict__.get('_views')
        if views is None:
            views = {}
            object.__setattr__(self, '_views', views)
        view = views.get(cls)
        if view is None:
            view = views[cls] = super().view_as(cls)
        return view

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop('_views', None)
        return state


def prefer_cloudpickle(options, argv):
    """Sets `--pickle_library=cloudpickle` in `options` unless `argv` chooses a pickler itself
    (see the module docstring)."""
    if '--pickle_library' not in flags_given(argv):
        options.view_as(SetupOptions).pickle_library = 'cloudpickle'


# The start of a bzip2 stream ("BZh") in the base64 text Beam's pickler writes.
_BZIP2_BASE64 = b'Qlpo'


@contextlib.contextmanager
def zlib_pickles():
    """Beam's pickler writes zlib instead of bzip2 within the block (see the module docstring) and
    reads both; restored at its end. Only for a run whose SDK workers are this process or its forks."""
    from apache_beam.internal import pickler  # pylint: disable=import-outside-toplevel
    dumps, loads = pickler.dumps, pickler.loads

    def zlib_dumps(o, enable_trace=True, use_zlib=False):  # pylint: disable=unused-argument
        return dumps(o, enable_trace=enable_trace, use_zlib=True)

    def either_loads(encoded, enable_trace=True, use_zlib=False):  # pylint: disable=unused-argument
        head = encoded[:4].encode('ascii') if isinstance(encoded, str) else bytes(encoded[:4])
        return loads(encoded, enable_trace=enable_trace, use_zlib=head != _BZIP2_BASE64)

    pickler.dumps, pickler.loads = zlib_dumps, either_loads
    try:
        yield
    finally:
        pickler.dumps, pickler.loads = dumps, loads


def freeze_process_objects():
    """Leaves every object alive now out of the cyclic garbage collector's later passes, including
    the interpreter's last one at exit (`gc.freeze`; see the module docstring). Only for a process
    that ends soon after its run: frozen cycles are never freed."""
    gc.freeze()


def run_as_command(main):
    """Runs `main` as the command's own process does: with the objects alive before it (the
    imports) and after it (the run's) frozen (`freeze_process_objects`)."""
    freeze_process_objects()
    try:
        main()
    finally:
        freeze_process_objects()
