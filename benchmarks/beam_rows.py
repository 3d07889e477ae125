"""What Beam's per-row work costs here: dict rows through a FlatMap, a Filter, a Map and a lifted
CombinePerKey on the in-process runner, as the relevant rows of the detection go after the read.

    python3 -m benchmarks.beam_rows [--rows 175000] [--repeat 2] [--variant rows] [--rows-per-key 1]

The rows (AzureActivity-like dicts of eight columns, keyed by one of them) come in lists of 256, as
the read step emits them; the run is timed whole, start-up of the runner included (a run of 256 rows
gives that part); the count of rows is checked. Prints one JSON object: the seconds of each run.

``--variant``: ``rows`` (the rows one by one through Unbatch, Filter and Map, as the detection's
stages take them), ``fused`` (one FlatMap from each list to the keyed rows) or ``preaggregated``
(one FlatMap from each list to its keys' partial counts); ``--rows-per-key`` consecutive rows share
a key, as a session's rows do.
"""

import argparse
import json
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

IN_PROCESS_RUNNER = 'apache_beam.runners.portability.fn_api_runner.fn_runner.FnApiRunner'
ROW = {'TimeGenerated': 1709273789428958, 'OperationNameValue': 'MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION',
       'Authorization': '{"action":"Microsoft.Compute/virtualMachines/runCommand/action","scope":"/subscriptions/s/'
                        'resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"}',
       'CorrelationId': '', 'Caller': 'bob@contoso.com', 'CallerIpAddress': '10.0.0.1',
       'ActivityStatusValue': 'Succeeded', 'EventDataId': 'e'}
BATCH = 256


def batches(rows, rows_per_key=1):
    for start in range(0, rows, BATCH):
        yield [('window', dict(ROW, CorrelationId=str(index // rows_per_key)))
               for index in range(start, min(rows, start + BATCH))]


def _keyed_rows(batch):
    for window, row in batch:
        if row['Caller'] != '':
            yield (window, row['CorrelationId']), 1


def _partial_counts(batch):
    counts = {}
    for window, row in batch:
        if row['Caller'] != '':
            key = (window, row['CorrelationId'])
            counts[key] = counts.get(key, 0) + 1
    return list(counts.items())


def run_once(rows, variant='rows', rows_per_key=1):
    options = PipelineOptions(['--runner=' + IN_PROCESS_RUNNER, '--direct_num_workers=1'])
    started = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        lists = (pipeline
                 | 'Rows' >> beam.Create([rows])
                 | 'Batches' >> beam.FlatMap(batches, rows_per_key))
        if variant == 'rows':
            keyed = (lists
                     | 'Unbatch' >> beam.FlatMap(lambda batch: batch)
                     | 'Filter' >> beam.Filter(lambda window_row: window_row[1]['Caller'] != '')
                     | 'Key' >> beam.MapTuple(lambda window, row: ((window, row['CorrelationId']), 1)))
        elif variant == 'fused':
            keyed = lists | 'KeyRows' >> beam.FlatMap(_keyed_rows)
        elif variant == 'preaggregated':
            keyed = lists | 'PartialCounts' >> beam.FlatMap(_partial_counts)
        else:
            raise ValueError(variant)
        total = (keyed
                 | 'CombinePerKey' >> beam.CombinePerKey(sum)
                 | 'Sum' >> beam.Map(lambda keyed_count: keyed_count[1])
                 | 'Total' >> beam.CombineGlobally(sum))
        assert_that(total, equal_to([rows]))  # every row counted once, or the run fails
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rows', type=int, default=175_000)
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument('--variant', choices=('rows', 'fused', 'preaggregated'), default='rows')
    parser.add_argument('--rows-per-key', type=int, default=1)
    args = parser.parse_args(argv)
    report = {'rows': args.rows, 'variant': args.variant, 'rows_per_key': args.rows_per_key,
              'start_up_s': [], 'run_s': []}
    for _ in range(args.repeat):
        report['start_up_s'].append(round(run_once(BATCH, args.variant), 3))
        report['run_s'].append(round(run_once(args.rows, args.variant, args.rows_per_key), 3))
    json.dump(report, sys.stdout)
    sys.stdout.write('\n')
    return report


if __name__ == '__main__':
    main()
