"""The command line, its options and the wiring of the detection's transforms into pipelines.

Run as ``python -m pipelines.rare_runcommand``, the warnings that libraries log or raise while they
load are silenced unless ``--debug`` is given (`pipelines.cli`): Python imports this package before
the module it runs, so before Beam.
"""

import sys

_ARGV = list(getattr(sys, 'orig_argv', ()))
if 'pipelines.rare_runcommand' in _ARGV[1:3] and _ARGV[_ARGV.index('pipelines.rare_runcommand') - 1] == '-m':
    from pipelines.cli import silence_libraries
    silence_libraries(_ARGV)
