"""The rule's query, stage after stage, with two drivers: Beam over every window at once, and one
window's rows in memory.

`DetectUniqueScripts` is the batch driver: each stage is a PTransform over ``(window, value)`` pairs
whose grouping keys start with the window. `evaluate_window` is the streaming driver
(`transforms.detect.streaming` calls it for each window as the watermark passes): the same stages
on one window's lists. Both call the same stage functions and CombineFns, so they read the same,
line for line; tests/test_streaming.py checks that they give the same results in both semantics.
"""

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.detect.file_joins import FILES, SESSIONS, JoinSessionsWithScriptFiles, window_session_files
from transforms.detect.fingerprints import UniqueFingerprints, window_unique_fingerprints
from transforms.detect.script_cmdlets import (ScriptCmdletEvents, ScriptCmdletLists, window_script_cmdlet_events,
                                              window_script_cmdlet_lists)
from transforms.detect.script_runs import RUNS, SCRIPTS, JoinScriptCmdlets, window_run_command_data
from transforms.detect.sessions import RunCommandSessions, window_sessions
from transforms.read.schema import AZURE_ACTIVITY, DEVICE_EVENTS, DEVICE_FILE_EVENTS

RESULTS = 'results'
RUN_COMMAND_DATA = 'run_command_data'
# Metrics namespace of the rows each stage produced (counter names: the stages' outputs).
DETECTION = 'detection'


class CountElements(beam.DoFn):
    """Passes elements through, counting them in the ``detection`` metrics namespace."""

    def __init__(self, name):
        self._name = name
        self._counter = None

    def setup(self):
        self._counter = Metrics.counter(DETECTION, self._name)

    def process(self, element):
        self._counter.inc()
        yield element


class DetectUniqueScripts(beam.PTransform):
    """The rule on windowed tables: {table name: (window, row)} -> {'results': (window, result row),
    'run_command_data': every (window, RunCommandData row), before the uniqueness filter}."""

    def __init__(self, semantics):
        super().__init__()
        self._semantics = semantics

    def expand(self, tables):
        semantics = self._semantics
        sessions = (
            tables[AZURE_ACTIVITY]
            | 'RunCommandSessions' >> RunCommandSessions(semantics)
            | 'CountSessions' >> beam.ParDo(CountElements('sessions')))
        runs = (
            {SESSIONS: sessions, FILES: tables[DEVICE_FILE_EVENTS]}
            | 'JoinSessionsWithScriptFiles' >> JoinSessionsWithScriptFiles(semantics)
            | 'CountJoinedRows' >> beam.ParDo(CountElements('joined_rows')))
        if semantics.joins_cmdlets_to_sessions:
            scripts = tables[DEVICE_EVENTS] | 'ScriptCmdletEvents' >> ScriptCmdletEvents(semantics)
        else:
            scripts = (
                tables[DEVICE_EVENTS]
                | 'ScriptCmdletLists' >> ScriptCmdletLists(semantics)
                | 'CountScripts' >> beam.ParDo(CountElements('scripts')))
        run_command_data = (
            {RUNS: runs, SCRIPTS: scripts}
            | 'JoinScriptCmdlets' >> JoinScriptCmdlets(semantics)
            | 'CountRunCommandData' >> beam.ParDo(CountElements('run_command_data')))
        results = run_command_data | 'UniqueFingerprints' >> UniqueFingerprints(semantics)
        return {RESULTS: results, RUN_COMMAND_DATA: run_command_data}


def evaluate_window(rows_by_table, semantics):
    """The result rows of one window from its rows ({table name: rows}): `DetectUniqueScripts` on lists."""
    sessions = window_sessions(rows_by_table.get(AZURE_ACTIVITY, ()), semantics)
    runs = window_session_files(sessions, rows_by_table.get(DEVICE_FILE_EVENTS, ()), semantics)
    if semantics.joins_cmdlets_to_sessions:
        scripts = window_script_cmdlet_events(rows_by_table.get(DEVICE_EVENTS, ()), semantics)
    else:
        scripts = window_script_cmdlet_lists(rows_by_table.get(DEVICE_EVENTS, ()), semantics)
    run_command_data = window_run_command_data(runs, scripts, semantics)
    return window_unique_fingerprints(run_command_data, semantics)
