"""Fixtures shared by test modules: the local Flink cluster, and the batch alerts of the semantics
scenarios (`scenario.semantics_scenarios`), daily windows, in both semantics."""

import collections

import apache_beam as beam
import pytest

from beam_testing import in_process_pipeline
from flink_support import cluster
from pipelines.rare_runcommand import read_json_lines_output
from scenario import SEMANTICS, WINDOWS, day_of, semantics_scenarios
from transforms.detect.alerts import ToAlerts
from transforms.detect.query import RESULTS, DetectUniqueScripts
from transforms.detect.rule import load_rule
from transforms.detect.semantics import NAMES
from transforms.write.files import WriteJsonLines


@pytest.fixture(scope='session')
def flink_cluster():
    """The local Flink cluster (templates/flink/local_cluster.sh), started once for the session and
    stopped at its end, unless it was running before the tests."""
    was_running = cluster('status') == 0
    if not was_running:
        assert cluster('start') == 0, 'templates/flink/local_cluster.sh start failed'
    yield
    if not was_running:
        assert cluster('stop') == 0


@pytest.fixture(scope='session')
def scenario_batch_alerts(tmp_path_factory):
    """{semantics name: {scenario day: [alerts]}}: DetectUniqueScripts and ToAlerts in one pipeline, each
    semantics over the windows it reads (`scenario.WINDOWS`: strict's read a margin around each day)."""
    pipeline = in_process_pipeline()
    rows_by_table = semantics_scenarios().typed()
    labelled = []
    for name in NAMES:
        tables = {
            table: pipeline | 'Rows' + table + name >> beam.Create(
                [(window, row) for row in rows for window in WINDOWS[name].windows_in_range(row['TimeGenerated'])])
            for table, rows in rows_by_table.items()}
        detected = tables | 'Detect' + name >> DetectUniqueScripts(SEMANTICS[name])
        labelled.append(
            detected[RESULTS]
            | 'ToAlerts' + name >> ToAlerts(load_rule(), name)
            | 'Label' + name >> beam.Map(lambda alert, name=name: (name, alert)))
    output = str(tmp_path_factory.mktemp('scenario-alerts'))
    labelled | 'AllAlerts' >> beam.Flatten() | 'Write' >> WriteJsonLines(output, 'alerts')
    pipeline.run().wait_until_finish()
    found = {name: collections.defaultdict(list) for name in NAMES}
    for name, alert in read_json_lines_output(output, 'alerts'):
        found[name][day_of(alert['QueryPeriodStart'])].append(alert)
    return found


@pytest.fixture(scope='session')
def kafka_broker():
    """The local Kafka broker (templates/kafka/local_broker.sh), started once for the session and stopped
    at its end, unless it was running before the tests."""
    from flink_support import broker
    was_running = broker('status') == 0
    if not was_running:
        assert broker('start') == 0, 'templates/kafka/local_broker.sh start failed'
    yield
    if not was_running:
        assert broker('stop') == 0
