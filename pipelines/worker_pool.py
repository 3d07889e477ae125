"""A Beam SDK worker pool that several Flink TaskManagers on one host can share.

    python -m pipelines.worker_pool --service_port=50000

With ``--environment_type EXTERNAL`` each TaskManager asks a worker pool to start a Python SDK worker
(``StartWorker``) and, when the job's stage is done, to stop it (``StopWorker``), naming the worker by an
id that the TaskManager makes up: ``<n>-1``, counted per TaskManager. Beam's own pool
(``apache_beam.runners.worker.worker_pool_main``) keeps one process per id, so two TaskManagers sharing it
ask for the same ids, and one TaskManager's ``StopWorker`` kills the other's worker in the middle of its
work; the other's task then waits forever for a worker that is gone. (On Kubernetes each TaskManager pod
has its own pool, so this does not arise there.) This pool is Beam's, with each worker known by the
connection that asked for it and its id: a TaskManager stops only the workers it started.
"""

import argparse
import atexit
import logging
import sys
import threading
import time

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker import worker_pool_main

_LOGGER = logging.getLogger(__name__)


class SharedWorkerPoolServicer(worker_pool_main.BeamFnExternalWorkerPoolServicer):
    """Beam's worker pool servicer with workers keyed by (requesting peer, worker id)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._workers = {}
        atexit.register(self.stop_all)

    def StartWorker(self, start_worker_request, context):  # pylint: disable=invalid-name
        key = (context.peer(), start_worker_request.worker_id)
        with self._lock:
            self._reap_exited()
            response = super().StartWorker(start_worker_request, context)
            process = self._worker_processes.pop(start_worker_request.worker_id, None)
            if process is not None:
                self._workers[key] = process
        return response

    def StopWorker(self, stop_worker_request, context):  # pylint: disable=invalid-name
        key = (context.peer(), stop_worker_request.worker_id)
        with self._lock:
            process = self._workers.pop(key, None)
        if process is not None:
            _LOGGER.info('Stopping worker %s of %s', key[1], key[0])
            worker_pool_main.kill_process_gracefully(process)
        else:
            # Not started through this connection: leave it alone. A worker whose TaskManager has gone
            # ends by itself when its control channel closes.
            _LOGGER.info('No worker %s of %s to stop', key[1], key[0])
        return beam_fn_api_pb2.StopWorkerResponse()

    def workers(self):
        """{(peer, worker id): process} of the workers started and not stopped or reaped."""
        with self._lock:
            return dict(self._workers)

    def stop_all(self):
        with self._lock:
            processes = list(self._workers.values())
            self._workers.clear()
        for process in processes:
            worker_pool_main.kill_process_gracefully(process)

    def _reap_exited(self):
        for key, process in list(self._workers.items()):
            if process.poll() is not None:
                del self._workers[key]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m pipelines.worker_pool', description=__doc__.splitlines()[0])
    parser.add_argument('--service_port', type=int, required=True, dest='port',
                        help='Port the pool listens on (localhost and every other interface).')
    parser.add_argument('--container_executable', default=None,
                        help="Beam's SDK container boot program to start workers with, instead of python -c.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    address, server = SharedWorkerPoolServicer.start(use_process=True, port=args.port,
                                                     container_executable=args.container_executable)
    _LOGGER.info('Worker pool listening at %s', address)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == '__main__':
    main(sys.argv[1:])
