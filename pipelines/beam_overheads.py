"""Two costs of Beam's Python SDK when it builds a pipeline, avoided without changing what it builds.

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
"""

import sys

from apache_beam.options.pipeline_options import PipelineOptions


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
