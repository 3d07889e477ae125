"""The ``rare-runcommand`` command: the warnings of the libraries are silenced (unless ``--debug``)
before Beam is imported, so that what Beam or its dependencies log while they load does not show
either; then `pipelines.rare_runcommand.main` runs."""

import logging
import sys
import warnings


def main():
    if '--debug' not in sys.argv[1:]:
        warnings.filterwarnings('ignore')
        logging.getLogger().setLevel(logging.ERROR)
    from pipelines import rare_runcommand  # pylint: disable=import-outside-toplevel
    rare_runcommand.main()


if __name__ == '__main__':
    main()
