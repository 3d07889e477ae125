"""The shared worker pool: two TaskManagers asking for the same worker id each get, and stop, their own."""

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker import worker_pool_main

from pipelines.worker_pool import SharedWorkerPoolServicer


class Peer:
    """The gRPC context of one TaskManager's connection."""

    def __init__(self, address):
        self._address = address

    def peer(self):
        return self._address


class FakeProcess:
    started = []

    def __init__(self, command, **unused_kwargs):
        self.command = command
        self.killed = False
        FakeProcess.started.append(self)

    def poll(self):
        return 0 if self.killed else None

    def terminate(self):
        self.killed = True

    kill = terminate

    def wait(self, timeout=None):
        return 0


def start(pool, peer, worker_id):
    request = beam_fn_api_pb2.StartWorkerRequest(worker_id=worker_id)
    request.control_endpoint.url = 'localhost:%d' % (40000 + len(FakeProcess.started))
    response = pool.StartWorker(request, Peer(peer))
    assert not response.error, response.error
    return FakeProcess.started[-1]


def test_a_stop_from_one_taskmanager_leaves_the_other_ones_worker_running(monkeypatch):
    FakeProcess.started = []
    monkeypatch.setattr(worker_pool_main.subprocess, 'Popen', FakeProcess)
    killed = []
    monkeypatch.setattr(worker_pool_main, 'kill_process_gracefully',
                        lambda process, timeout=10: (killed.append(process), setattr(process, 'killed', True)))
    pool = SharedWorkerPoolServicer(use_process=True)
    first = start(pool, 'ipv4:127.0.0.1:51000', '5-1')
    second = start(pool, 'ipv4:127.0.0.1:52000', '5-1')
    assert first is not second and set(pool.workers()) == {('ipv4:127.0.0.1:51000', '5-1'),
                                                            ('ipv4:127.0.0.1:52000', '5-1')}

    pool.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id='5-1'), Peer('ipv4:127.0.0.1:51000'))
    assert killed == [first]
    assert list(pool.workers()) == [('ipv4:127.0.0.1:52000', '5-1')]

    # A stop from a connection that started no such worker kills nothing.
    pool.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id='5-1'), Peer('ipv4:127.0.0.1:53000'))
    assert killed == [first]

    pool.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id='5-1'), Peer('ipv4:127.0.0.1:52000'))
    assert killed == [first, second] and not pool.workers()


def test_workers_that_ended_by_themselves_are_forgotten_at_the_next_start(monkeypatch):
    FakeProcess.started = []
    monkeypatch.setattr(worker_pool_main.subprocess, 'Popen', FakeProcess)
    pool = SharedWorkerPoolServicer(use_process=True)
    ended = start(pool, 'ipv4:127.0.0.1:51000', '1-1')
    ended.killed = True   # its process exited
    start(pool, 'ipv4:127.0.0.1:51000', '2-1')
    assert list(pool.workers()) == [('ipv4:127.0.0.1:51000', '2-1')]


def test_beams_own_pool_lets_one_taskmanager_stop_the_others_worker(monkeypatch):
    """Why this pool exists: Beam's keys workers by id alone."""
    FakeProcess.started = []
    monkeypatch.setattr(worker_pool_main.subprocess, 'Popen', FakeProcess)
    killed = []
    monkeypatch.setattr(worker_pool_main, 'kill_process_gracefully', lambda process, timeout=10: killed.append(process))
    pool = worker_pool_main.BeamFnExternalWorkerPoolServicer(use_process=True)
    start(pool, 'ipv4:127.0.0.1:51000', '5-1')
    second = start(pool, 'ipv4:127.0.0.1:52000', '5-1')
    pool.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id='5-1'), Peer('ipv4:127.0.0.1:51000'))
    assert killed == [second]
