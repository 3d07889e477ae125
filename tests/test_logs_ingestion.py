"""The Logs Ingestion API sink against a local HTTP server on 127.0.0.1 that checks every request."""

import gzip
import http.server
import json
import threading
import time
import urllib.parse

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_testing import in_process_pipeline
from transforms.write import logs_ingestion as li

TOKEN = 'eyJ0eXAi.secret-token-value'
DCR = 'dcr-0123456789abcdef0123456789abcdef'
STREAM = 'Custom-RareRunCommandAlerts'


class FakeIngestion:
    """A Logs Ingestion endpoint: records requests, answers from a script (default 204)."""

    def __init__(self):
        self.requests = []
        self.script = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers['Content-Length']))
                gzipped = self.headers.get('Content-Encoding') == 'gzip'
                body = gzip.decompress(raw) if gzipped else raw
                with owner.lock:
                    owner.requests.append({
                        'path': urllib.parse.urlsplit(self.path).path,
                        'query': urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query),
                        'authorization': self.headers.get('Authorization'),
                        'content_type': self.headers.get('Content-Type'),
                        'gzip': gzipped, 'wire_bytes': len(raw), 'body_bytes': len(body),
                        'records': json.loads(body)})
                    status, headers, text = owner.script.pop(0) if owner.script else (204, {}, '')
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                payload = text.encode('utf-8')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.endpoint = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    with FakeIngestion() as fake:
        yield fake


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv('TEST_SENTINEL_TOKEN', TOKEN)
    return li.TokenSource(token_env='TEST_SENTINEL_TOKEN')


def alert(n, pad=0):
    return {'SystemAlertId': 'id-%03d' % n, 'AlertName': 'Rare script <%d>' % n, 'Pad': 'x' * pad}


def client(server, token_source, sleeps, **kwargs):
    url = li.ingestion_url(server.endpoint, DCR, STREAM)
    return li.LogsIngestionClient(url, token_source, sleep=sleeps.append, proxies={}, **kwargs)


def pairs(records):
    return [(r, li.encode_record(r)) for r in records]


def test_request_shape(server, token_env):
    sleeps = []
    rejected = client(server, token_env, sleeps).send(pairs([alert(1), alert(2)]))
    assert rejected == [] and sleeps == []
    [request] = server.requests
    assert request['path'] == '/dataCollectionRules/%s/streams/%s' % (DCR, STREAM)
    assert request['query'] == {'api-version': ['2023-01-01']}
    assert request['authorization'] == 'Bearer ' + TOKEN
    assert request['content_type'] == 'application/json'
    assert request['gzip'] is True and request['wire_bytes'] < request['body_bytes'] + 40
    assert request['records'] == [alert(1), alert(2)]


def test_plain_json_when_gzip_is_off(server, token_env):
    client(server, token_env, [], use_gzip=False).send(pairs([alert(1)]))
    assert server.requests[0]['gzip'] is False
    assert server.requests[0]['wire_bytes'] == server.requests[0]['body_bytes']


def test_429_retry_after_then_500_backoff_then_success(server, token_env):
    server.script = [(429, {'Retry-After': '7'}, 'throttled'), (500, {}, 'oops'), (503, {}, ''),
                     (204, {}, '')]
    sleeps = []
    c = client(server, token_env, sleeps, base_delay=0.5, max_attempts=5)
    assert c.send(pairs([alert(1)])) == []
    # Retry-After honoured, then exponential backoff for the 2nd and 3rd retries.
    assert sleeps == [7.0, 1.0, 2.0]
    assert len(server.requests) == 4 and c.retries == 3
    assert all(r['records'] == [alert(1)] for r in server.requests)


def test_retry_after_is_capped_and_ms_header_understood(server, token_env):
    server.script = [(429, {'Retry-After': '3600'}, ''), (429, {'retry-after-ms': '1500'}, '')]
    sleeps = []
    assert client(server, token_env, sleeps, max_delay=30.0).send(pairs([alert(1)])) == []
    assert sleeps == [30.0, 1.5]


def test_bounded_attempts_then_dead_letter(server, token_env):
    server.script = [(500, {}, 'internal')] * 10
    sleeps = []
    rejected = client(server, token_env, sleeps, max_attempts=3, base_delay=1.0).send(pairs([alert(1), alert(2)]))
    assert len(server.requests) == 3 and sleeps == [1.0, 2.0]
    assert [r[0] for r in rejected] == [alert(1), alert(2)]
    record, status, reason, attempts = rejected[0]
    assert status == 500 and attempts == 3
    assert reason == 'HTTP 500: internal (gave up after 3 attempts)'


@pytest.mark.parametrize('status, calls', [
    (408, 2), (429, 2), (500, 2), (502, 2), (503, 2), (504, 2),     # retried
    (400, 1), (401, 1), (403, 1), (404, 1), (501, 1), (505, 1)])    # final
def test_which_statuses_are_retried(server, token_env, status, calls):
    server.script = [(status, {}, '')]
    sleeps = []
    rejected = client(server, token_env, sleeps, max_attempts=2).send(pairs([alert(1)]))
    assert len(server.requests) == calls and len(sleeps) == calls - 1
    # A retried status answered once is sent again, and the second call (204) succeeds.
    assert rejected == ([] if calls == 2 else [(alert(1), status, 'HTTP %d' % status, 1)])


def test_client_error_is_not_retried_and_token_not_in_reason(server, token_env):
    server.script = [(400, {}, '{"error":{"code":"InvalidStream"}}')]
    sleeps = []
    rejected = client(server, token_env, sleeps).send(pairs([alert(1)]))
    assert len(server.requests) == 1 and sleeps == []
    assert rejected[0][1] == 400 and 'InvalidStream' in rejected[0][2]
    assert TOKEN not in repr(rejected) and TOKEN not in repr(token_env)


def test_413_splits_the_batch(server, token_env):
    server.script = [(413, {}, 'too large')]
    assert client(server, token_env, []).send(pairs([alert(i) for i in range(4)])) == []
    assert [len(r['records']) for r in server.requests] == [4, 2, 2]


def test_connection_error_is_retried_then_dead_lettered(token_env):
    with FakeIngestion() as fake:
        endpoint = fake.endpoint
    sleeps = []
    url = li.ingestion_url(endpoint, DCR, STREAM)
    c = li.LogsIngestionClient(url, token_env, sleep=sleeps.append, proxies={}, max_attempts=2, timeout=5)
    [(_, status, reason, attempts)] = c.send(pairs([alert(1)]))
    assert status is None and attempts == 2 and sleeps == [1.0]
    assert reason.startswith('no response: connection error')


def test_token_from_file_reread_each_call(server, tmp_path):
    token_file = tmp_path / 'token'
    token_file.write_text('Bearer first-token\n')
    source = li.TokenSource(token_file=str(token_file))
    c = client(server, source, [])
    c.send(pairs([alert(1)]))
    token_file.write_text('second-token')
    c.send(pairs([alert(2)]))
    assert [r['authorization'] for r in server.requests] == ['Bearer first-token', 'Bearer second-token']


def test_missing_token_is_a_clear_error(monkeypatch):
    monkeypatch.delenv('NO_SUCH_TOKEN_VAR', raising=False)
    with pytest.raises(ValueError, match='no bearer token in the environment variable NO_SUCH_TOKEN_VAR'):
        li.TokenSource(token_env='NO_SUCH_TOKEN_VAR').token()


def test_plain_http_refused_except_loopback():
    with pytest.raises(ValueError, match='must be an https:// URL'):
        li.check_endpoint(li.ingestion_url('http://example.ingest.monitor.azure.com', DCR, STREAM))
    li.check_endpoint(li.ingestion_url('https://example.ingest.monitor.azure.com', DCR, STREAM))
    li.check_endpoint(li.ingestion_url('http://127.0.0.1:8080', DCR, STREAM))
    with pytest.raises(ValueError, match='--dce_endpoint'):
        li.ingestion_url('', DCR, STREAM)


def _no_sleep(seconds):
    del seconds


def test_pipeline_batches_within_limit_and_dead_letters_rejects(server, tmp_path):
    # 30 alerts of ~1 KB with 5 KB batches: several calls, each body within the limit, all alerts
    # delivered once; one alert larger than a whole call is dead-lettered without being sent; the
    # first call is throttled once.
    token_file = tmp_path / 'token'
    token_file.write_text(TOKEN)
    server.script = [(429, {'Retry-After': '1'}, '')]
    alerts = [alert(i, pad=1000) for i in range(30)]
    huge = alert(99, pad=6000)
    limit = 5000
    pipeline = in_process_pipeline()
    dead = (pipeline
            | beam.Create(alerts + [huge])
            | li.WriteToLogsIngestion(server.endpoint, DCR, STREAM, li.TokenSource(token_file=str(token_file)),
                                      max_batch_bytes=limit, sleep=_no_sleep, proxies={}))
    assert_that(dead | beam.Map(lambda d: (d['SystemAlertId'], d['status'], d['sink'], d['alert']['Pad'][:3])),
                equal_to([('id-099', None, 'sentinel', 'xxx')]))
    result = pipeline.run()
    result.wait_until_finish()
    bodies = [r for r in server.requests]
    assert len(bodies) >= 7
    assert all(r['body_bytes'] <= limit for r in bodies)
    delivered = [rec['SystemAlertId'] for r in bodies[1:] for rec in r['records']]
    assert sorted(delivered) == sorted(a['SystemAlertId'] for a in alerts)
    assert bodies[0]['records'] == bodies[1]['records']  # the throttled call was repeated
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()['counters']
                if c.key.metric.namespace == 'sentinel'}
    assert counters['alerts_sent'] == 30 and counters['alerts_rejected'] == 1 and counters['retries'] == 1
    assert counters['calls'] == len(bodies)


def post_one_bundle(server, token_source, alerts, max_batch_bytes):
    """The DoFn over one bundle of `alerts`, without a pipeline; returns its dead letters."""
    dofn = li.PostToLogsIngestion(server.endpoint, DCR, STREAM, token_source, max_batch_bytes=max_batch_bytes,
                                  sleep=_no_sleep, proxies={})
    dofn.setup()
    dofn.start_bundle()
    dead = [record for alert in alerts for record in dofn.process(alert)]
    dead += [windowed.value for windowed in dofn.finish_bundle()]
    return dead


def test_a_batch_of_exactly_the_call_limit_is_one_call_and_one_byte_over_is_two(server, token_env):
    first, second = alert(1, pad=100), alert(2, pad=250)
    body = len(b'[' + li.encode_record(first) + b',' + li.encode_record(second) + b']')
    assert post_one_bundle(server, token_env, [first, second], body) == []
    assert [(len(r['records']), r['body_bytes']) for r in server.requests] == [(2, body)]
    server.requests.clear()
    assert post_one_bundle(server, token_env, [first, second], body - 1) == []
    assert [[record['SystemAlertId'] for record in r['records']] for r in server.requests] == [['id-001'], ['id-002']]


def test_an_alert_of_exactly_the_call_limit_is_sent_and_one_byte_over_is_dead_lettered(server, token_env):
    only = alert(3, pad=400)
    body = len(b'[' + li.encode_record(only) + b']')
    assert post_one_bundle(server, token_env, [only], body) == []
    assert [r['body_bytes'] for r in server.requests] == [body]
    server.requests.clear()
    [dead] = post_one_bundle(server, token_env, [only], body - 1)
    assert server.requests == []
    assert (dead['SystemAlertId'], dead['status'], dead['attempts']) == ('id-003', None, 0)
    assert dead['reason'] == 'alert is %d bytes, over the %d-byte limit of one Logs Ingestion API call' % (
        body - 2, body - 1)


# ---------------------------------------------------------------------------------- a hostile endpoint

class Recorder:
    """An HTTP server on 127.0.0.1 that records every request, whatever its method, and answers 200."""

    def __init__(self):
        self.requests = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get('Content-Length') or 0)
                owner.requests.append((self.command, self.path, self.headers.get('Authorization'),
                                       self.rfile.read(length) if length else b''))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            do_GET = do_POST = do_PUT = _record  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.endpoint = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize('status', [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_the_token_never_leaves_the_endpoint(server, token_env, status):
    with Recorder() as elsewhere:
        server.script = [(status, {'Location': elsewhere.endpoint + '/steal'}, '')] * 3
        sleeps = []
        rejected = client(server, token_env, sleeps, max_attempts=3).send(pairs([alert(1), alert(2)]))
    assert elsewhere.requests == []            # nothing, and no token, went to the other origin
    assert len(server.requests) == 3 and len(sleeps) == 2   # a failure, retried
    assert [(r[1], r[3]) for r in rejected] == [(status, 3), (status, 3)]
    assert 'redirect, not followed' in rejected[0][2]


@pytest.mark.parametrize('status', [200, 201, 202])
def test_only_204_counts_as_delivered(server, token_env, status):
    server.script = [(status, {}, '{"accepted": true}')]
    rejected = client(server, token_env, []).send(pairs([alert(1)]))
    assert [(r[1], r[3]) for r in rejected] == [(status, 1)]
    assert rejected[0][2].startswith('HTTP %d (not the 204 of a delivered upload)' % status)


class Trickler:
    """A server that reads the request, then sends its answer one byte every 50 ms."""

    def __init__(self, answer=b'HTTP/1.1 204 No Content\r\nX-Padding: ' + b'p' * 200 + b'\r\n\r\n'):
        self.stop = threading.Event()
        self.calls = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                owner.calls += 1
                self.rfile.read(int(self.headers['Content-Length']))
                for byte in answer:
                    if owner.stop.wait(0.05):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.endpoint = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_trickling_server_cannot_hold_a_call_past_its_deadline(token_env):
    # The answer takes 12 s at one byte per 50 ms: each byte comes well within the socket's
    # timeout, so only a deadline on the whole call ends it.
    with Trickler() as trickler:
        url = li.ingestion_url(trickler.endpoint, DCR, STREAM)
        c = li.LogsIngestionClient(url, token_env, sleep=_no_sleep, proxies={}, max_attempts=2, timeout=0.5)
        started = time.monotonic()
        [(_, status, reason, attempts)] = c.send(pairs([alert(1)]))
        elapsed = time.monotonic() - started
    assert elapsed < 3 and trickler.calls == 2
    assert (status, attempts) == (None, 2) and 'call deadline of 0.5 s' in reason
    assert reason.startswith('no response: no complete answer within the call deadline')


class FakeClock:
    """A monotonic clock that only the (fake) sleeps move."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_sink_has_a_time_budget_after_which_the_rest_is_dead_lettered(server, token_env):
    server.script = [(503, {}, 'busy')] * 20
    clock = FakeClock()
    dofn = li.PostToLogsIngestion(server.endpoint, DCR, STREAM, token_env, max_batch_bytes=300, sleep=clock.sleep,
                                  proxies={}, max_attempts=5, base_delay=4.0, time_budget=10.0)
    dofn.setup()
    dofn._client._clock = clock   # pylint: disable=protected-access
    dofn.start_bundle()
    alerts = [alert(n, pad=150) for n in range(3)]   # one alert per batch
    dead = [record for a in alerts for record in dofn.process(a)]
    dead += [windowed.value for windowed in dofn.finish_bundle()]
    # First batch: called at 0 and 4 s; the next wait (8 s) would pass the 10 s budget. The other
    # batches are not sent at all.
    assert len(server.requests) == 2 and clock.sleeps == [4.0]
    assert sorted(d['SystemAlertId'] for d in dead) == ['id-000', 'id-001', 'id-002']
    assert all('time budget of 10 s exhausted' in d['reason'] for d in dead)
    # The next bundle has the budget again.
    server.script = []
    dofn.start_bundle()
    assert [record for record in dofn.process(alert(7))] == [] and list(dofn.finish_bundle()) == []
    assert server.requests[-1]['records'] == [alert(7)]


JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'


def test_a_response_echoing_the_token_is_redacted_in_dead_letters_and_logs(server, token_env, caplog):
    echo = 'Authorization: Bearer %s; other: bearer %s; raw %s; url %s' % (TOKEN, JWT, TOKEN, urllib.parse.quote(TOKEN))
    server.script = [(503, {}, echo), (401, {}, echo)]
    with caplog.at_level('WARNING'):
        rejected = client(server, token_env, []).send(pairs([alert(1)]))
    [(_, status, reason, attempts)] = rejected
    assert (status, attempts) == (401, 2)
    assert TOKEN not in reason and JWT not in reason and urllib.parse.quote(TOKEN) not in reason
    assert reason.startswith('HTTP 401: Authorization: Bearer [redacted]; other: bearer [redacted]; raw [redacted]')
    assert TOKEN not in caplog.text and JWT not in caplog.text


def test_redact_catches_bearer_tokens_and_jwts_it_was_not_given():
    assert li.redact('x Bearer abc.DEF-ghi_jk~l+/= y') == 'x Bearer [redacted] y'
    assert li.redact('token=%s&x=1' % JWT) == 'token=[redacted]&x=1'
    assert li.redact('nothing secret here') == 'nothing secret here'


def test_proxies_of_the_environment_are_not_used_for_a_loopback_endpoint(server, token_env, monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.setenv(name, 'http://127.0.0.1:9')   # nothing listens there
    monkeypatch.delenv('no_proxy', raising=False)
    monkeypatch.delenv('NO_PROXY', raising=False)
    url = li.ingestion_url(server.endpoint, DCR, STREAM)
    assert li.LogsIngestionClient(url, token_env, sleep=_no_sleep).send(pairs([alert(1)])) == []
    assert server.requests[0]['authorization'] == 'Bearer ' + TOKEN


@pytest.mark.parametrize('endpoint', ['http://localhost.example.com', 'http://10.0.0.1', 'ftp://127.0.0.1',
                                      'http://127.0.0.1.example.com'])
def test_plain_http_is_refused_for_anything_but_a_loopback_address(endpoint):
    with pytest.raises(ValueError, match='must be an https:// URL'):
        li.PostToLogsIngestion(endpoint, DCR, STREAM, li.TokenSource())
