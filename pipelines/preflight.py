"""Checks of the runner's endpoints before any work: a cluster that is not there is one line, not a hang."""

import json
import os
import socket
import urllib.error
import urllib.request

from apache_beam.options.pipeline_options import FlinkRunnerOptions, PortableOptions, StandardOptions

# Seconds to wait for each endpoint: a cluster that answers at all answers well within this.
TIMEOUT_SECONDS = 5


class PreflightError(Exception):
    """An endpoint the run needs does not answer; the message says which and how to start it."""


def _host_port(address, default_port):
    address = address.split('://', 1)[-1].rstrip('/')
    host, _, port = address.rpartition(':')
    if not host:
        return address, default_port
    try:
        return host, int(port)
    except ValueError:
        raise PreflightError('not a host:port: %r' % address) from None


def check_flink_master(master):
    """The Flink REST API at `master` (host:port) answers /overview, or PreflightError."""
    host, port = _host_port(master, 8081)
    url = 'http://%s:%d/overview' % (host, port)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            overview = json.load(response)
    except (OSError, ValueError, urllib.error.URLError) as error:
        reason = getattr(error, 'reason', error)
        raise PreflightError('no Flink cluster answers at %s:%d (%s); start one, e.g. '
                             'templates/flink/local_cluster.sh start' % (host, port, reason)) from None
    if not overview.get('slots-total'):
        raise PreflightError('the Flink cluster at %s:%d has no TaskManager slots' % (host, port))


def check_worker_pool(address):
    """Something listens at the EXTERNAL environment's worker pool address, or PreflightError."""
    host, port = _host_port(address, 50000)
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS):
            pass
    except OSError as error:
        raise PreflightError('no Beam SDK worker pool answers at %s:%d (%s); start one with '
                             'python -m pipelines.worker_pool --service_port=%d'
                             % (host, port, error.strerror or error, port)) from None


def check_job_server_jar(options):
    """The Flink job server jar Beam's FlinkRunner will start is a file, is in Beam's jar cache, or
    answers at its download address; else PreflightError (Beam would fail later with a traceback)."""
    from apache_beam.runners.portability.flink_runner import FlinkJarJobServer
    from apache_beam.utils.subprocess_server import JavaJarServer
    try:
        location = FlinkJarJobServer(options).path_to_jar()
    except ValueError:  # --flink_job_server_jar names no file and no URL
        raise PreflightError('--flink_job_server_jar: no such file: %s'
                             % options.view_as(FlinkRunnerOptions).flink_job_server_jar) from None
    if os.path.exists(location):
        return
    cached = os.path.join(JavaJarServer.JAR_CACHE, os.path.basename(location))
    if os.path.exists(cached):
        return
    request = urllib.request.Request(location, method='HEAD')
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):
            return
    except (OSError, ValueError) as error:
        raise PreflightError('the Flink job server jar is neither at %s nor in Beam\'s cache (%s): %s; '
                             'templates/flink/local_cluster.sh start builds it, or give '
                             '--flink_job_server_jar' % (location, cached, error)) from None


def check_runner_endpoints(options):
    """Raises PreflightError if a remote Flink master, the job server jar or an EXTERNAL worker pool
    is not there."""
    runner = (options.view_as(StandardOptions).runner or '').lower()
    if runner not in ('flinkrunner', 'flink', 'apache_beam.runners.portability.flink_runner.flinkrunner'):
        return
    flink = options.view_as(FlinkRunnerOptions)
    if flink.flink_master and flink.flink_master not in ('[local]', '[auto]'):
        check_flink_master(flink.flink_master)
    check_job_server_jar(options)
    portable = options.view_as(PortableOptions)
    if (portable.environment_type or '').upper() == 'EXTERNAL' and portable.environment_config:
        check_worker_pool(portable.environment_config)
