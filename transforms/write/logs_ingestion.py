"""Alerts into Microsoft Sentinel / Log Analytics through the Azure Monitor Logs Ingestion API.

One call is ``POST {dce}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version=2023-01-01``
with ``Authorization: Bearer <token>``, ``Content-Type: application/json`` and a JSON array of records
(optionally gzip-compressed, ``Content-Encoding: gzip``); success is ``204 No Content``.

Documented limits (Azure Monitor service limits, "Logs Ingestion API"):

* maximum size of one API call: 1 MB, for both compressed and uncompressed data -- batches here
  are cut so that the *uncompressed* JSON body stays within ``MAX_CALL_BYTES``, which bounds the
  compressed body too; a single alert larger than that is dead-lettered, never sent;
* field values longer than 64 KB are truncated by the service (a ``SingleAlert``'s ``QueryResults``
  can be that long: keep ``AlertPerResult`` for Sentinel, or read the complete alert from the files);
* 2 GB of data and 12,000 requests per minute per DCR; over that the service answers ``429`` with
  ``Retry-After``.

Retries: ``408``, ``429``, ``500``, ``502``, ``503`` and ``504`` (and connection errors, calls past
their deadline, and redirects) are retried up to ``max_attempts`` calls in all, waiting
``Retry-After`` (seconds, HTTP date, or ``retry-after-ms``) when the response gives it, else
exponential backoff ``base_delay * 2**n``, every wait capped at ``max_delay``. ``413`` splits the
batch in two. Any other answer, or retries exhausted, dead-letters every alert of the batch with the
status and the start of the response body.

What the sink trusts and what it does not, the endpoint and whatever answers on it included:

* only ``204`` counts as delivered; another 2xx (a proxy's or a captive portal's page) is a final
  failure, the alerts dead-lettered;
* redirects are never followed (the POST goes to the configured URL only, so the token never
  reaches another origin): a 3xx is a failure, retried, then dead-lettered;
* the bearer token is sent over HTTPS only (plain HTTP only to a loopback address, for tests, and
  never through a proxy; an HTTPS proxy is only a CONNECT tunnel, TLS runs to the endpoint);
* each call has a total deadline (``timeout``): a server that trickles bytes is cut off when it
  passes, whatever the socket's per-read timeout; and each bundle of alerts a total time budget
  (``time_budget``), retries and their waits included, after which its remaining alerts are
  dead-lettered without being sent;
* the token, and anything that looks like a bearer token or a JWT, is redacted from every
  response text that is stored (dead letters) or logged.

The bearer token comes from a file (re-read before every call, so an external refresher can
rotate it; local path or any Beam FileSystems path) or an environment variable. It is never
logged, never put in a dead letter.
"""

import email.utils
import gzip
import http.client
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.write.files import to_json_line

API_VERSION = '2023-01-01'
MAX_CALL_BYTES = 1_000_000          # "Maximum size of API call: 1 MB" (decimal, to stay safely under)
RETRYABLE_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
SUCCESS = 204                       # the documented success of an upload: nothing else is delivered
DEFAULT_TIMEOUT = 60.0              # seconds, the whole of one call
DEFAULT_TIME_BUDGET = 900.0         # seconds, every call and wait of one bundle of alerts
DEFAULT_TOKEN_ENV = 'SENTINEL_BEARER_TOKEN'
DEFAULT_STREAM = 'Custom-RareRunCommandAlerts'  # the stream declared in schemas/dcr_example.json
SINK = 'sentinel'
_BODY_EXCERPT = 300

_LOG = logging.getLogger(__name__)


def ingestion_url(endpoint, dcr_immutable_id, stream):
    """The Logs Ingestion API URL of one DCR stream."""
    if not endpoint or not dcr_immutable_id or not stream:
        raise ValueError('the Sentinel sink needs --dce_endpoint, --dcr_immutable_id and --dcr_stream_name')
    return '%s/dataCollectionRules/%s/streams/%s?api-version=%s' % (
        endpoint.rstrip('/'), urllib.parse.quote(dcr_immutable_id, safe=''),
        urllib.parse.quote(stream, safe=''), API_VERSION)


def _is_loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url):
    """Refuses to send a bearer token anywhere but over HTTPS (plain HTTP only to loopback, for tests)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == 'https' or (parsed.scheme == 'http' and _is_loopback(parsed.hostname or '')):
        return
    raise ValueError('the data collection endpoint must be an https:// URL, got %s://%s'
                     % (parsed.scheme, parsed.hostname))


_BEARER = re.compile(r'(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9\-._~+/]+=*')
_JWT = re.compile(r'\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*')
REDACTED = '[redacted]'


def redact(text, token=None):
    """`text` without the token (as it is, URL-encoded or JSON-escaped) nor anything that looks like
    a bearer token or a JWT."""
    text = str(text)
    if token:
        for form in {token, urllib.parse.quote(token, safe=''), urllib.parse.quote_plus(token),
                     token.replace('/', '\\/')}:
            text = text.replace(form, REDACTED)
    text = _BEARER.sub(lambda m: m.group(1) + ' ' + REDACTED, text)
    return _JWT.sub(REDACTED, text)


def _proxy_for(url, proxies):
    """(host, port) of the proxy to tunnel an HTTPS call through, or None. `proxies` None: the
    environment's (https_proxy, no_proxy); plain HTTP (loopback) never goes through a proxy."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != 'https':
        return None
    if proxies is None:
        proxies = urllib.request.getproxies()
        if urllib.request.proxy_bypass(parsed.hostname or ''):
            return None
    proxy = proxies.get('https')
    if not proxy:
        return None
    proxy = urllib.parse.urlsplit(proxy if '://' in proxy else 'http://' + proxy)
    return proxy.hostname, proxy.port or 8080


class TokenSource:
    """Where the bearer token is read from: a file or an environment variable. Holds no token itself."""

    def __init__(self, token_file=None, token_env=DEFAULT_TOKEN_ENV):
        self.token_file = token_file
        self.token_env = token_env

    def __repr__(self):
        return 'TokenSource(token_file=%r, token_env=%r)' % (self.token_file, self.token_env)

    def token(self):
        if self.token_file:
            from apache_beam.io.filesystems import FileSystems
            with FileSystems.open(self.token_file, compression_type='uncompressed') as handle:
                value = handle.read().decode('utf-8').strip()
            where = 'token file %s' % self.token_file
        else:
            value = os.environ.get(self.token_env or DEFAULT_TOKEN_ENV, '').strip()
            where = 'environment variable %s' % (self.token_env or DEFAULT_TOKEN_ENV)
        if not value:
            raise ValueError('no bearer token in the %s' % where)
        if value.lower().startswith('bearer '):
            value = value[7:].strip()
        return value


def retry_after_seconds(headers, now=None):
    """The wait a 429/503 response asks for, in seconds, or None."""
    for name, scale in (('retry-after-ms', 0.001), ('x-ms-retry-after-ms', 0.001)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                pass
    value = headers.get('Retry-After')
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def encode_record(record):
    return to_json_line(record).encode('utf-8')


class LogsIngestionClient:
    """Posts batches to one DCR stream with retries; returns what is finally rejected.

    `timeout`: seconds for the whole of one call (connect, send, answer); `time_budget`: seconds for
    all the calls and waits from `start_budget` on (None: no budget); `clock`: a monotonic clock.
    """

    def __init__(self, url, token_source, use_gzip=True, max_attempts=5, base_delay=1.0, max_delay=60.0,
                 timeout=DEFAULT_TIMEOUT, sleep=time.sleep, proxies=None, time_budget=None, clock=time.monotonic):
        check_endpoint(url)
        if max_attempts < 1:
            raise ValueError('max_attempts must be at least 1')
        self.url = url
        parsed = urllib.parse.urlsplit(url)
        self._scheme, self._host, self._port = parsed.scheme, parsed.hostname, parsed.port
        self._target = parsed.path + ('?' + parsed.query if parsed.query else '')
        self._token_source = token_source
        self._gzip = use_gzip
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._timeout = timeout
        self._sleep = sleep
        self._proxy = _proxy_for(url, proxies)
        self._time_budget = time_budget
        self._clock = clock
        self._budget_end = None
        self.calls = 0
        self.retries = 0
        self.start_budget()

    def start_budget(self):
        """Starts the time budget (again): the calls and waits from now on share it."""
        self._budget_end = None if self._time_budget is None else self._clock() + self._time_budget

    def budget_left(self):
        return float('inf') if self._budget_end is None else self._budget_end - self._clock()

    def _connection(self, timeout):
        if self._scheme == 'http':
            return http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        context = ssl.create_default_context()
        if self._proxy:
            connection = http.client.HTTPSConnection(*self._proxy, timeout=timeout, context=context)
            connection.set_tunnel(self._host, self._port or 443)
            return connection
        return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=context)

    def _request(self, body):
        """One POST; (status, headers, body excerpt) -- status None for no answer."""
        token = self._token_source.token()
        data = gzip.compress(body, mtime=0) if self._gzip else body
        headers = {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json',
                   'Content-Length': str(len(data))}
        if self._gzip:
            headers['Content-Encoding'] = 'gzip'
        allowed = min(self._timeout, self.budget_left())
        if allowed <= 0:
            return None, {}, 'time budget of %g s exhausted' % self._time_budget
        deadline = self._clock() + allowed
        connection = self._connection(allowed)
        expired = threading.Event()

        def cut_off():  # the call's deadline passed: end whatever read or write is blocked
            expired.set()
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        watchdog = threading.Timer(allowed, cut_off)
        watchdog.daemon = True
        self.calls += 1
        watchdog.start()
        try:
            connection.request('POST', self._target, body=data, headers=headers)
            response = connection.getresponse()
            excerpt = response.read(_BODY_EXCERPT * 4).decode('utf-8', errors='replace')[:_BODY_EXCERPT]
            if expired.is_set() or self._clock() > deadline:
                return None, {}, 'no complete answer within the call deadline of %g s' % round(allowed, 3)
            return response.status, response.headers, redact(excerpt, token)
        except (OSError, http.client.HTTPException) as error:
            if expired.is_set() or self._clock() >= deadline:
                return None, {}, 'no complete answer within the call deadline of %g s' % round(allowed, 3)
            return None, {}, 'connection error: %s' % redact(error, token)
        finally:
            watchdog.cancel()
            connection.close()

    def post(self, encoded):
        """Sends one body of encoded records; returns (ok, status, reason, attempts)."""
        body = b'[' + b','.join(encoded) + b']'
        attempt = 0
        while True:
            if self.budget_left() <= 0:
                return False, None, 'time budget of %g s exhausted (after %d attempts)' % (
                    self._time_budget, attempt), attempt
            attempt += 1
            status, headers, excerpt = self._request(body)
            if status == SUCCESS:
                return True, status, '', attempt
            redirect = status is not None and 300 <= status < 400
            retryable = status is None or status in RETRYABLE_STATUSES or redirect
            if not retryable or attempt >= self._max_attempts:
                reason = ('HTTP %d' % status if status is not None else 'no response')
                if redirect:
                    reason += ' (a redirect, not followed: the token goes to the configured endpoint only)'
                elif status is not None and 200 <= status < 300:
                    reason += ' (not the 204 of a delivered upload)'
                if excerpt:
                    reason += ': ' + excerpt
                if retryable:
                    reason += ' (gave up after %d attempts)' % attempt
                return False, status, reason, attempt
            wait = retry_after_seconds(headers) if status is not None else None
            if wait is None:
                wait = self._base_delay * (2 ** (attempt - 1))
            wait = min(wait, self._max_delay)
            if wait >= self.budget_left():
                self._budget_end = self._clock()  # spent: the batches after this one are not sent either
                return False, status, 'time budget of %g s exhausted (after %d attempts; last: %s)' % (
                    self._time_budget, attempt, 'HTTP %d' % status if status is not None else excerpt), attempt
            self.retries += 1
            _LOG.warning('Logs Ingestion API answered %s; retrying in %.1f s (attempt %d of %d)',
                         status if status is not None else excerpt, wait, attempt + 1, self._max_attempts)
            self._sleep(wait)

    def send(self, pairs):
        """Posts (record, encoded) pairs, splitting on 413; returns [(record, status, reason, attempts)] rejected."""
        ok, status, reason, attempts = self.post([encoded for _, encoded in pairs])
        if ok:
            return []
        if status == 413 and len(pairs) > 1:
            half = len(pairs) // 2
            return self.send(pairs[:half]) + self.send(pairs[half:])
        return [(record, status, reason, attempts) for record, _ in pairs]


def rejected_record(record, stream, status, reason, attempts):
    """The dead letter of an alert the API finally rejected (the whole alert, for a replay)."""
    return {'sink': SINK, 'stream': stream, 'status': status, 'reason': reason, 'attempts': attempts,
            'SystemAlertId': record.get('SystemAlertId') if isinstance(record, dict) else None,
            'alert': record}


class PostToLogsIngestion(beam.DoFn):
    """Alerts (global window) -> POSTs of at most `max_batch_bytes`; outputs the dead letters of rejects.

    Alerts are buffered per bundle and sent whenever the next one would overflow the batch, and at
    the end of the bundle. Each bundle has the client's time budget: past it, the alerts left are
    dead-lettered unsent. Counters (namespace ``sentinel``): ``alerts_sent``, ``calls``,
    ``retries``, ``alerts_rejected``.
    """

    def __init__(self, endpoint, dcr_immutable_id, stream, token_source, use_gzip=True, max_attempts=5,
                 base_delay=1.0, max_delay=60.0, timeout=DEFAULT_TIMEOUT, max_batch_bytes=MAX_CALL_BYTES,
                 sleep=time.sleep, proxies=None, time_budget=DEFAULT_TIME_BUDGET):
        self._url = ingestion_url(endpoint, dcr_immutable_id, stream)
        check_endpoint(self._url)
        self._stream = stream
        self._token_source = token_source
        self._client_args = dict(use_gzip=use_gzip, max_attempts=max_attempts, base_delay=base_delay,
                                 max_delay=max_delay, timeout=timeout, sleep=sleep, proxies=proxies,
                                 time_budget=time_budget)
        self._max_batch_bytes = min(max_batch_bytes, MAX_CALL_BYTES)
        self._client = None
        self._buffer = []
        self._buffer_bytes = 2

    def setup(self):
        self._client = LogsIngestionClient(self._url, self._token_source, **self._client_args)
        self._sent = Metrics.counter(SINK, 'alerts_sent')
        self._calls = Metrics.counter(SINK, 'calls')
        self._retries = Metrics.counter(SINK, 'retries')
        self._rejected = Metrics.counter(SINK, 'alerts_rejected')

    def start_bundle(self):
        self._buffer, self._buffer_bytes = [], 2
        self._client.start_budget()  # each bundle of alerts has the time budget

    def process(self, alert):
        encoded = encode_record(alert)
        if 2 + len(encoded) > self._max_batch_bytes:
            self._rejected.inc()
            yield rejected_record(alert, self._stream, None, 'alert is %d bytes, over the %d-byte limit of one '
                                  'Logs Ingestion API call' % (len(encoded), self._max_batch_bytes), 0)
            return
        extra = len(encoded) + (1 if self._buffer else 0)
        if self._buffer and self._buffer_bytes + extra > self._max_batch_bytes:
            yield from self._flush()
            extra = len(encoded)
        self._buffer.append((alert, encoded))
        self._buffer_bytes += extra

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue
        for dead in self._flush():
            yield WindowedValue(dead, GlobalWindow().max_timestamp(), [GlobalWindow()])

    def _flush(self):
        pairs, self._buffer, self._buffer_bytes = self._buffer, [], 2
        if not pairs:
            return
        calls, retries = self._client.calls, self._client.retries
        rejected = self._client.send(pairs)
        self._calls.inc(self._client.calls - calls)
        self._retries.inc(self._client.retries - retries)
        self._sent.inc(len(pairs) - len(rejected))
        for record, status, reason, attempts in rejected:
            self._rejected.inc()
            yield rejected_record(record, self._stream, status, reason, attempts)


class WriteToLogsIngestion(beam.PTransform):
    """Alerts -> the Logs Ingestion API; returns the dead letters of the alerts finally rejected."""

    def __init__(self, endpoint, dcr_immutable_id, stream, token_source, **kwargs):
        super().__init__()
        self._dofn = PostToLogsIngestion(endpoint, dcr_immutable_id, stream, token_source, **kwargs)

    def expand(self, alerts):
        return (
            alerts
            | 'GlobalWindow' >> beam.WindowInto(beam.transforms.window.GlobalWindows())
            | 'PostBatches' >> beam.ParDo(self._dofn))
