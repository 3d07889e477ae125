"""Checks of the runner's endpoints before any work: a cluster that is not there is one line, not a hang."""

import json
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
                             'python -m apache_beam.runners.worker.worker_pool_main --service_port=%d'
                             % (host, port, error.strerror or error, port)) from None


def check_runner_endpoints(options):
    """Raises PreflightError if a remote Flink master or an EXTERNAL worker pool does not answer."""
    runner = (options.view_as(StandardOptions).runner or '').lower()
    if runner not in ('flinkrunner', 'flink', 'apache_beam.runners.portability.flink_runner.flinkrunner'):
        return
    master = options.view_as(FlinkRunnerOptions).flink_master
    if master and master not in ('[local]', '[auto]'):
        check_flink_master(master)
    portable = options.view_as(PortableOptions)
    if (portable.environment_type or '').upper() == 'EXTERNAL' and portable.environment_config:
        check_worker_pool(portable.environment_config)
