"""The Logs Ingestion API sink against a local HTTP server on 127.0.0.1 that checks every request."""

import gzip
import http.server
import json
import threading
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
