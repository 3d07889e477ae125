"""The ``rare-runcommand`` command: the warnings of the libraries are silenced (unless ``--debug``)
before Beam is imported, so that what Beam or its dependencies log or warn while they load does not
show either; then `pipelines.rare_runcommand.main` runs (which keeps them silenced during the run), with the
objects of the imports and, at exit, those of the run left out of garbage collection
(`pipelines.beam_overheads.run_as_command`)."""

import logging
import sys
import warnings


def silence_libraries(argv):
    """Warnings and log records below ERROR are dropped, unless `argv` holds ``--debug``."""
    if '--debug' not in argv:
        warnings.filterwarnings('ignore')
        logging.getLogger().setLevel(logging.ERROR)


def main():
    silence_libraries(sys.argv[1:])
    from pipelines import rare_runcommand  # pylint: disable=import-outside-toplevel
    from pipelines.beam_overheads import run_as_command  # pylint: disable=import-outside-toplevel
    run_as_command(rare_runcommand.main)


if __name__ == '__main__':
    main()
