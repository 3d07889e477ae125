"""SDK worker processes forked from the command's own process instead of started afresh.

In ``multi_processing`` mode Beam's in-process runner starts each SDK worker as a new interpreter
(``python -m apache_beam.runners.worker.sdk_worker_main``), which imports Beam and the detection
again before it does any work: about a second of CPU per worker, while the run waits for them
(benchmarks/README.md has the measurements). Here the command forks one process, the *zygote*, once
it has imported the detection and before it has started any thread; every worker the runner asks
for is forked from the zygote, with its modules already loaded, in milliseconds.

The runner still starts each worker with a command (its environment's ``command_string``), and
sees it as one of its own: a small client (Python without site packages) connects to the zygote
over a Unix socket, hands it the client's environment (the runner's control and logging endpoints,
the pipeline's options, the worker id) and standard streams, and exits with the worker's exit
status. The zygote waits for every worker it forked (their CPU time and memory count in the
command's own, as a started worker's do) and ends when the command closes its end of a pipe, or
exits (a worker still running `WORKER_EXIT_SECONDS` later is killed). Only a process of the
command's own user may ask for a worker (``SO_PEERCRED``).

Forking needs a process that runs no other thread (a thread's locks, gRPC's above all, would be
copied in whatever state they were in): `forking_is_safe` says whether this one is; it is on Linux
in the command's process before its run, where `ForkedWorkersRunner` is used. Elsewhere, or in a
process that has already run gRPC (a test session), the runner starts Beam's own command.
"""

import logging
import os
import secrets
import select
import shlex
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.transforms.environments import EmbeddedPythonEnvironment, SubprocessSDKEnvironment

_LOGGER = logging.getLogger(__name__)

# Names gRPC's core gives the threads it starts (Linux shows the first 15 bytes in /proc).
_GRPC_THREAD_NAMES = ('default-executo', 'event_engine', 'grpc_global_tim', 'resolver-execut', 'lifeguard')
_LENGTH = struct.Struct('>Q')
_MAX_ENVIRONMENT_BYTES = 1 << 24
_STREAMS = 3  # stdin, stdout, stderr
WORKER_EXIT_SECONDS = 10
REQUEST_SECONDS = 10

# The worker command: connects to the zygote named by its argument, sends the size of its
# environment with its three standard streams, then the environment (NUL-separated KEY=VALUE
# bytes), and exits with the status the worker sends back (1 when it sends none).
_CLIENT = r'''
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect('\0' + sys.argv[1])
data = b'\0'.join(k + b'=' + v for k, v in os.environb.items())
socket.send_fds(s, [len(data).to_bytes(8, 'big')], [0, 1, 2])
s.sendall(data)
status = b''
while True:
    chunk = s.recv(64)
    if not chunk:
        break
    status += chunk
sys.exit(int(status) if status.strip().isdigit() else 1)
'''


def forking_is_safe():
    """Whether this process may fork a zygote: Linux, and no thread but this one (of Python's or
    gRPC's making; threads of numerical libraries, idle and never used by a worker, do not count)."""
    if not sys.platform.startswith('linux') or not hasattr(os, 'fork'):
        return False
    if threading.active_count() != 1:
        return False
    try:
        tasks = os.listdir('/proc/self/task')
    except OSError:
        return False
    for task in tasks:
        try:
            with open('/proc/self/task/%s/comm' % task, encoding='utf-8', errors='replace') as handle:
                name = handle.read().strip()
        except OSError:
            continue
        if name.startswith(_GRPC_THREAD_NAMES):
            return False
    return True


class Zygote:
    """A process forked from this one that forks SDK workers on request (see the module docstring)."""

    def __init__(self):
        self.name = 'rare-runcommand-workers-%d-%s' % (os.getpid(), secrets.token_hex(8))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind('\0' + self.name)
        listener.listen(64)
        read_end, self._write_end = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.close(self._write_end)
                _serve(listener, read_end)
                code = 0
            except BaseException:  # pylint: disable=broad-except  # reported; the process ends here
                traceback.print_exc()
            finally:
                os._exit(code)  # pylint: disable=protected-access  # never the command's exit handlers
        listener.close()
        os.close(read_end)

    @property
    def command(self):
        """The shell command that starts one worker (what the runner's environment runs)."""
        return ' '.join(shlex.quote(part) for part in (sys.executable, '-I', '-S', '-c', _CLIENT, self.name))

    @property
    def running(self):
        return self._write_end is not None

    def stop(self):
        """Ends the zygote once the workers it forked have ended (they end when the runner closes
        their control channel, at the end of its run)."""
        if self._write_end is None:
            return
        os.close(self._write_end)
        self._write_end = None
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _serve(listener, parent_end):
    """The zygote's loop: a worker for each request, until `parent_end` reads end-of-file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's; the zygote ends with it
    _import_worker_modules()
    workers = set()

    def reap(*_):
        for pid in list(workers):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                workers.discard(pid)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        ready, _, _ = select.select([listener, parent_end], [], [])
        if parent_end in ready:
            break
        try:
            connection, _ = listener.accept()
        except OSError:
            continue
        with connection:
            connection.settimeout(REQUEST_SECONDS)  # a connection that sends nothing holds up the next worker this long
            request = _receive(connection)
            if request is None:
                continue
            environment, streams = request
            try:
                pid = os.fork()
            except OSError:  # the client sees the connection close without a status, and fails
                pid = None
            if pid == 0:
                listener.close()
                os.close(parent_end)
                _run_worker(connection, environment, streams)
            if pid is not None:
                workers.add(pid)
            for fd in streams:
                os.close(fd)
    # The workers are waited for, so that their CPU time counts in this process's children's (and so
    # in the command's). They end when the runner closes their control channel; one that has not
    # ended after WORKER_EXIT_SECONDS is killed.
    deadline = time.monotonic() + WORKER_EXIT_SECONDS
    while workers and time.monotonic() < deadline:
        select.select([], [], [], 0.05)
        reap()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _import_worker_modules():
    """Imports what every worker imports (Beam's SDK harness and its operations, which the command
    itself does not use), while the command builds its pipeline."""
    # pylint: disable=import-outside-toplevel,unused-import
    from apache_beam.runners.worker import bundle_processor, operations, sdk_worker_main  # noqa: F401


def _receive(connection):
    """(environment, [stdin, stdout, stderr] descriptors) of a request, or None when it is not one
    from this user."""
    pid_uid_gid = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize('3i'))
    if struct.unpack('3i', pid_uid_gid)[1] != os.getuid():
        return None
    try:
        header, streams, _, _ = socket.recv_fds(connection, _LENGTH.size, _STREAMS)
    except OSError:
        return None
    try:
        if len(header) != _LENGTH.size or len(streams) != _STREAMS:
            raise ValueError('incomplete request')
        (length,) = _LENGTH.unpack(header)
        if length > _MAX_ENVIRONMENT_BYTES:
            raise ValueError('environment of %d bytes' % length)
        data = bytearray()
        while len(data) < length:
            chunk = connection.recv(min(1 << 16, length - len(data)))
            if not chunk:
                raise ValueError('incomplete request')
            data += chunk
    except (OSError, ValueError):
        for fd in streams:
            os.close(fd)
        return None
    environment = {}
    for item in bytes(data).split(b'\0'):
        key, equals, value = item.partition(b'=')
        if equals:
            environment[key] = value
    return environment, streams


def _run_worker(connection, environment, streams):
    """In a process forked from the zygote: Beam's SDK worker with the client's environment and
    streams; sends the exit status to the client and ends. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
            os.close(fd)
        os.environb.clear()
        os.environb.update(environment)
        root = logging.getLogger()
        for handler in list(root.handlers):  # the command's console; the worker logs to the runner
            root.removeHandler(handler)
        from apache_beam.runners.worker import sdk_worker_main  # pylint: disable=import-outside-toplevel
        sys.argv = [sdk_worker_main.__file__]  # as started with -m: options parsed from argv are not the command's
        sdk_worker_main.main(sys.argv)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # pylint: disable=broad-except  # reported; the status says it failed
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # pylint: disable=broad-except
                pass
        try:
            connection.sendall(b'%d' % code)
        except OSError:
            pass
        os._exit(code)  # pylint: disable=protected-access  # never the command's exit handlers


class ForkedWorkersRunner(FnApiRunner):
    """Beam's in-process runner whose ``multi_processing`` workers are forked from a `Zygote`
    started now (the caller checks `forking_is_safe`). The zygote ends with the first run; a later
    run starts Beam's own worker command."""

    def __init__(self, **kwargs):
        self._zygote = Zygote()
        super().__init__(default_environment=SubprocessSDKEnvironment.from_command_string(self._zygote.command),
                         **kwargs)

    def run_pipeline(self, pipeline, options):
        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode != 'multi_processing' or not self._zygote.running:
            self._zygote.stop()
            self._default_environment = EmbeddedPythonEnvironment.default()  # FnApiRunner's own default
            return super().run_pipeline(pipeline, options)
        # FnApiRunner replaces the environment of a multi_processing run with Beam's command: without
        # the mode it keeps this runner's, and takes the number of workers from the options as before.
        direct.direct_running_mode = None
        try:
            return super().run_pipeline(pipeline, options)
        finally:
            direct.direct_running_mode = 'multi_processing'
            self._zygote.stop()
