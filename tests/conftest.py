"""Fixtures shared by test modules."""

import pytest

from flink_support import cluster


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
