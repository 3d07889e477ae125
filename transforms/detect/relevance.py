"""Which rows can take part in a result: the first predicate of each table's stage.

The read step applies it after a row is parsed, validated and counted, so that the rows that cannot
matter to the rule (nearly all of a tenant's telemetry) never become Beam elements.
"""

from transforms.detect.file_joins import is_script_file_write
from transforms.detect.script_cmdlets import script_cmdlet
from transforms.detect.sessions import is_run_command_on_vm
from transforms.read.prefilter import relevance_needles
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_FILE_EVENTS


def is_relevant(table, row, semantics):
    """Whether a typed row of `table` passes its stage's first filter under `semantics`."""
    if table == AZURE_ACTIVITY:
        return is_run_command_on_vm(row, semantics)
    if table == DEVICE_FILE_EVENTS:
        return is_script_file_write(row, semantics)
    return script_cmdlet(row, semantics) is not None


class RelevantTo:
    """A picklable predicate: is_relevant for one table and semantics."""

    def __init__(self, table, semantics):
        self.table = table
        self.semantics = semantics

    def __call__(self, row):
        return is_relevant(self.table, row, self.semantics)


def read_filters(table, semantics, scan='relevant'):
    """(needles, keep) of the read step for `table`: the byte prefilter (None when no literal search
    is exact) and the relevance predicate applied after parsing. With ``scan='full'`` the read step
    must be given ``validate_skipped=True`` too: the records the needles skip are then validated and
    counted, not skipped (`transforms.read.sources.ExportSource`)."""
    if scan not in ('relevant', 'full'):
        raise ValueError(scan)
    needles = relevance_needles(table, semantics.operations, semantics.process_names,
                                semantics.folds_process_names)
    return needles, RelevantTo(table, semantics)
