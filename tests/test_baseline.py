"""History baseline: a fingerprint seen in the N days before a window does not alert again.

The bounds of the history, the store's merge and its files as plain functions; the baseline's
transforms on hand-made sightings in one pipeline; then whole runs (slow): the windows of one run,
and a store carried from one run to the next.
"""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_testing import in_process_pipeline
from scenario import Tenant, run_alerts
from transforms.detect import baseline
from transforms.detect.alerts import ALERTS
from transforms.detect.baseline import SEEN, Sighting

RULE_ID = '5239248b-abfb-4c6a-8177-b104ade5db56'
DAY = 86_400_000_000
MAY_8 = 1715126400 * 1_000_000   # 2024-05-08T00:00:00Z


def alert(fingerprint, window_start):
    return {'QueryPeriodStart': window_start, 'QueryResult': {'ScriptFingerprintHash': fingerprint}}


@pytest.mark.parametrize('seen_at, suppressed', [
    (MAY_8 - 7 * DAY - 1, False),      # one microsecond before the 7 days: not in the history
    (MAY_8 - 7 * DAY, True),           # the first microsecond of the history
    (MAY_8 - 1, True),                 # the last microsecond before the window
    (MAY_8, False),                    # inside the window itself: this window's own sighting
])
def test_the_history_is_the_n_days_before_the_window(seen_at, suppressed):
    grouped = {ALERTS: [alert('f', '2024-05-08T00:00:00.000000Z')], SEEN: [Sighting(seen_at, ('run',), None)]}
    kept = list(baseline.keep_new_fingerprints('f', grouped, 7 * DAY))
    assert kept == ([] if suppressed else grouped[ALERTS])


def record(fingerprint, first_seen, last_seen, count):
    return {'rule_id': RULE_ID, 'semantics': 'sentinel', 'fingerprint': fingerprint, 'first_seen': first_seen,
            'last_seen': last_seen, 'count': count, 'example': {'VirtualMachineName': 'vm-old'}}


def test_merge_keeps_the_earliest_first_seen_and_the_latest_last_seen():
    stored = [record('a', '2024-05-03T00:00:00.000000Z', '2024-05-04T00:00:00.000000Z', 2),
              record('b', '2024-05-01T00:00:00.000000Z', '2024-05-09T00:00:00.000000Z', 5),
              record('c', '2024-05-02T00:00:00.000000Z', '2024-05-02T00:00:00.000000Z', 1)]
    run = [{'fingerprint': 'a', 'first_seen': '2024-05-01T00:00:00.000000Z', 'last_seen': '2024-05-05T00:00:00.000000Z',
            'count': 3, 'example': {'VirtualMachineName': 'vm-new'}},
           {'fingerprint': 'b', 'first_seen': '2024-05-06T00:00:00.000000Z', 'last_seen': '2024-05-07T00:00:00.000000Z',
            'count': 1, 'example': {'VirtualMachineName': 'vm-new'}},
           {'fingerprint': 'd', 'first_seen': '2024-05-08T00:00:00.000000Z', 'last_seen': '2024-05-08T00:00:00.000000Z',
            'count': 1, 'example': {'VirtualMachineName': 'vm-new'}}]
    merged = sorted(baseline.merge_store(stored, run, RULE_ID, 'sentinel'), key=lambda r: r['fingerprint'])
    assert [(r['fingerprint'], r['first_seen'][:10], r['last_seen'][:10], r['count'], r['example']['VirtualMachineName'])
            for r in merged] == [
        ('a', '2024-05-01', '2024-05-05', 5, 'vm-old'),     # the run saw it earlier and later
        ('b', '2024-05-01', '2024-05-09', 6, 'vm-old'),     # the store saw it earlier and later
        ('c', '2024-05-02', '2024-05-02', 1, 'vm-old'),     # not seen in this run
        ('d', '2024-05-08', '2024-05-08', 1, 'vm-new')]     # new
    assert merged[3]['rule_id'] == RULE_ID and merged[3]['semantics'] == 'sentinel'


def test_a_run_summary_counts_distinct_script_runs_and_keeps_the_earliest_example():
    sightings = [Sighting(MAY_8 + 5, ('run-2',), {'VirtualMachineName': 'vm2'}),
                 Sighting(MAY_8 + 1, ('run-1',), {'VirtualMachineName': 'vm1'}),
                 Sighting(MAY_8 + 5, ('run-2',), {'VirtualMachineName': 'vm2'}),   # the same run, twice
                 Sighting(MAY_8 - DAY, ('store', 'first_seen'), None)]             # a stored sighting
    assert list(baseline.summarize_fingerprint('f', sightings)) == [{
        'fingerprint': 'f', 'first_seen': '2024-05-08T00:00:00.000001Z', 'last_seen': '2024-05-08T00:00:00.000005Z',
        'count': 2, 'example': {'VirtualMachineName': 'vm1'}}]


@pytest.mark.parametrize('extension', ['.jsonl', '.avro'])
def test_store_round_trip_and_replacement(tmp_path, extension):
    store = tmp_path / ('store' + extension)
    store.write_text('old\n')
    records = [record('b', '2024-05-01T00:00:00.000000Z', '2024-05-02T00:00:00.000000Z', 2),
               record('a', '2024-05-03T00:00:00.000000Z', '2024-05-03T00:00:00.000000Z', 1)]
    baseline.write_store(str(store), records)
    assert baseline.read_store(str(store), RULE_ID, 'sentinel') == sorted(records, key=lambda r: r['fingerprint'])
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.name]   # no temporary left behind
    with pytest.raises(baseline.BaselineError, match='sentinel semantics; this run is rule .* with strict semantics'):
        baseline.read_store(str(store), RULE_ID, 'strict')


def test_the_baseline_transforms_on_sightings():
    # Fingerprint f: seen in a run on May 1 and in the store on April 30; g: only in this window.
    sightings = [('f', Sighting(MAY_8 - 7 * DAY, ('run-1',), {'VirtualMachineName': 'vm1'})),
                 ('g', Sighting(MAY_8 + 10, ('run-2',), {'VirtualMachineName': 'vm2'}))]
    stored = list(baseline.store_observations(
        [record('f', '2024-04-30T00:00:00.000000Z', '2024-04-30T00:00:00.000000Z', 1)]))
    alerts = [alert('f', '2024-05-08T00:00:00.000000Z'), alert('g', '2024-05-08T00:00:00.000000Z'),
              alert('f', '2024-05-09T00:00:00.000000Z')]
    with in_process_pipeline() as pipeline:
        seen = pipeline | 'Seen' >> beam.Create(sightings + stored)
        kept = ({ALERTS: pipeline | 'Alerts' >> beam.Create(alerts), SEEN: seen}
                | baseline.ApplyHistoryBaseline(7))
        assert_that(kept | beam.Map(lambda a: (a['QueryResult']['ScriptFingerprintHash'], a['QueryPeriodStart'][:10])),
                    equal_to([('g', '2024-05-08'), ('f', '2024-05-09')]), label='NewFingerprints')
        summaries = pipeline | 'RunSightings' >> beam.Create(sightings) | baseline.SummarizeFingerprints()
        assert_that(summaries | beam.Map(lambda s: (s['fingerprint'], s['first_seen'], s['count'])),
                    equal_to([('f', '2024-05-01T00:00:00.000000Z', 1), ('g', '2024-05-08T00:00:00.000010Z', 1)]),
                    label='Summaries')


# ------------------------------------------------------------------------------------ whole runs

def weekly_script(days):
    tenant = Tenant()
    for number, day in enumerate(days):
        tenant.session(day, 10, 'vm%d' % number)
        tenant.script(day, 10, 'vm%d' % number, 'script0.ps1', ['Get-Process', 'Restart-Service'])
    return tenant


def alert_days(alerts):
    return sorted(int(a['QueryPeriodStart'][8:10]) for a in alerts)


@pytest.mark.slow
@pytest.mark.parametrize('semantics', ['sentinel', 'strict'])
def test_each_window_sees_the_windows_before_it(tmp_path, semantics):
    inputs = weekly_script([1, 8, 20]).write(tmp_path)
    common = inputs + ['--semantics', semantics]
    # Day 8 is 7 days after day 1: seen within 7 days, not within 6; day 20 is new again.
    assert alert_days(run_alerts(common + ['--history_days', '7'], tmp_path / 'h7')) == [1, 20]
    assert alert_days(run_alerts(common + ['--history_days', '6'], tmp_path / 'h6')) == [1, 8, 20]


@pytest.mark.slow
def test_store_carries_history_across_runs(tmp_path):
    store = tmp_path / 'store.jsonl'
    (tmp_path / 'first').mkdir()
    first = weekly_script([1]).write(tmp_path / 'first')
    assert alert_days(run_alerts(first + ['--baseline_out', str(store)], tmp_path / 'out1')) == [1]
    [stored] = baseline.read_store(str(store), RULE_ID, 'sentinel')
    assert stored['count'] == 1 and stored['first_seen'] == '2024-05-01T10:00:00.000000Z'
    assert stored['example']['PowershellScriptCommands'] == ['GET-PROCESS', 'RESTART-SERVICE']

    (tmp_path / 'second').mkdir()
    second = weekly_script([5]).write(tmp_path / 'second')
    args = second + ['--history_days', '7', '--baseline_in', str(store), '--baseline_out', str(store)]
    assert run_alerts(args, tmp_path / 'out2') == []
    [stored] = baseline.read_store(str(store), RULE_ID, 'sentinel')
    assert stored['count'] == 2 and stored['last_seen'] == '2024-05-05T10:00:00.000000Z'


def test_a_store_of_the_other_semantics_is_refused_before_the_run(tmp_path):
    store = tmp_path / 'store.jsonl'
    store.write_text(json.dumps(dict(record('ab', '2024-05-01T00:00:00.000000Z', '2024-05-01T00:00:00.000000Z', 1),
                                     semantics='strict')) + '\n')
    inputs = weekly_script([3]).write(tmp_path)
    with pytest.raises(baseline.BaselineError, match='strict semantics'):
        run_alerts(inputs + ['--history_days', '7', '--baseline_in', str(store)], tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
