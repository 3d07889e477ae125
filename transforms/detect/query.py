"""The rule's query, stage after stage, with two drivers: Beam over every window at once, and one
window's rows in memory.

`DetectUniqueScripts` is the batch driver: each stage is a PTransform over ``(window, value)`` pairs
whose grouping keys start with the window. `evaluate_window` is the streaming driver
(`transforms.detect.streaming` calls it for each window as the watermark passes): the same stages
on one window's lists. Both call the same stage functions and CombineFns, so they read the same,
line for line; tests/test_streaming.py checks that they give the same results in both semantics.

`transforms.detect.per_window.DetectPerWindow` is a third driver, for batch: one grouping per
window, whose window stages are `window_stages` on lists (the default ``--detect_grouping window``).

Strict semantics read rows before and after each window (`Semantics.look_ahead_us`, the windows'
margin), so that a session is seen whole with its script run whichever window boundary it crosses,
and keep the runs of the sessions that start in the window (`Semantics.evaluates_session`).
"""

from typing import NamedTuple

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
    """Passes elements through, counting them (those `counts` accepts) in the ``detection`` metrics namespace."""

    def __init__(self, name, counts=None):
        self._name = name
        self._counts = counts
        self._counter = None

    def setup(self):
        self._counter = Metrics.counter(DETECTION, self._name)

    def process(self, element):
        if self._counts is None or self._counts(element):
            self._counter.inc()
        yield element


class InWindow:
    """A picklable predicate on ``(window, row)``: the row's session starts in the window (strict), or
    any row (sentinel); `field` names the row's session start."""

    def __init__(self, semantics, field='StartTime'):
        self._semantics = semantics
        self._field = field

    def __call__(self, window_and_row):
        window, row = window_and_row
        return self._semantics.evaluates_session(window, row[self._field])


class IsAttributed:
    """A picklable predicate on ``(window, joined row)``: strict's file events count as joined rows when
    they belong to a session of the window."""

    def __init__(self, semantics):
        self._in_window = InWindow(semantics)

    def __call__(self, window_and_row):
        window, row = window_and_row
        session = row.get('Session', row)
        return session is not None and self._in_window((window, session))


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
            | 'CountSessions' >> beam.ParDo(CountElements('sessions', InWindow(semantics))))
        runs = (
            {SESSIONS: sessions, FILES: tables[DEVICE_FILE_EVENTS]}
            | 'JoinSessionsWithScriptFiles' >> JoinSessionsWithScriptFiles(semantics)
            | 'CountJoinedRows' >> beam.ParDo(CountElements('joined_rows', IsAttributed(semantics))))
        if semantics.joins_cmdlets_to_sessions:
            scripts = tables[DEVICE_EVENTS] | 'ScriptCmdletEvents' >> ScriptCmdletEvents(semantics)
        else:
            scripts = (
                tables[DEVICE_EVENTS]
                | 'ScriptCmdletLists' >> ScriptCmdletLists(semantics)
                | 'CountScripts' >> beam.ParDo(CountElements('scripts')))
        run_command_data = (
            {RUNS: runs, SCRIPTS: scripts}
            | 'JoinScriptCmdlets' >> JoinScriptCmdlets(semantics))
        if semantics.look_ahead_us:
            run_command_data = run_command_data | 'KeepSessionsStartingInWindow' >> beam.Filter(InWindow(semantics))
        run_command_data = run_command_data | 'CountRunCommandData' >> beam.ParDo(CountElements('run_command_data'))
        results = run_command_data | 'UniqueFingerprints' >> UniqueFingerprints(semantics)
        return {RESULTS: results, RUN_COMMAND_DATA: run_command_data}


class WindowStages(NamedTuple):
    """One window's stage outputs: what `DetectUniqueScripts` counts and returns, on lists."""

    sessions: list
    runs: list
    scripts: list
    run_command_data: list


def window_stages(rows_by_table, semantics, window=None):
    """The stage outputs of one window (start, end) from the rows it reads ({table name: rows});
    ``run_command_data`` keeps, as `DetectUniqueScripts` does, the rows of sessions the window evaluates."""
    sessions = window_sessions(rows_by_table.get(AZURE_ACTIVITY, ()), semantics)
    runs = window_session_files(sessions, rows_by_table.get(DEVICE_FILE_EVENTS, ()), semantics)
    if semantics.joins_cmdlets_to_sessions:
        scripts = window_script_cmdlet_events(rows_by_table.get(DEVICE_EVENTS, ()), semantics)
    else:
        scripts = window_script_cmdlet_lists(rows_by_table.get(DEVICE_EVENTS, ()), semantics)
    return stages_of(sessions, runs, scripts, semantics, window)


def stages_of(sessions, runs, scripts, semantics, window):
    """`WindowStages` of one window's sessions, joined rows and scripts."""
    run_command_data = [row for row in window_run_command_data(runs, scripts, semantics)
                        if semantics.evaluates_session(window, row['StartTime'])]
    return WindowStages(sessions, runs, scripts, run_command_data)


def window_run_command_data_of(rows_by_table, semantics, window=None):
    """RunCommandData of one window (start, end) from the rows it reads ({table name: rows}): the
    ``run_command_data`` output of `DetectUniqueScripts` on lists."""
    return window_stages(rows_by_table, semantics, window).run_command_data


def evaluate_window(rows_by_table, semantics, window=None):
    """The result rows of one window (start, end) from the rows it reads ({table name: rows}):
    `DetectUniqueScripts` on lists."""
    return window_unique_fingerprints(window_run_command_data_of(rows_by_table, semantics, window), semantics)
