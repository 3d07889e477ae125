"""Flex Template launcher entry point (FLEX_TEMPLATE_PYTHON_PY_FILE).

The launcher runs ``python main.py --name=value ...`` with the launch parameters of metadata.json
plus the Dataflow options of the launch (project, region, temp_location, job_name, setup_file...).
The pipeline itself is the installed package: this file only defaults the runner to Dataflow,
because `pipelines.rare_runcommand.run` otherwise defaults to the local in-process runner.
"""

import logging
import sys

from pipelines.rare_runcommand import run


def launch_args(argv):
    """The launch arguments, with ``--runner=DataflowRunner`` unless a runner is given."""
    if any(arg == '--runner' or arg.startswith('--runner=') for arg in argv):
        return list(argv)
    return ['--runner=DataflowRunner'] + list(argv)


if __name__ == '__main__':
    logging.getLogger().setLevel(logging.INFO)
    run(launch_args(sys.argv[1:]))
