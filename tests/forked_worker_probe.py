"""Runs a small pipeline with two forked SDK workers in a process of its own (forking needs a
process that has started no thread, which a test session is not) and prints what
tests/test_forked_workers.py checks, as JSON.

    python tests/forked_worker_probe.py OUTPUT_DIR
"""

import json
import os
import socket
import subprocess
import sys
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import forked_workers
from pipelines.local_workers import in_process_runner


def main(output_dir):
    report = {'probe': os.getpid(), 'safe_before': forked_workers.forking_is_safe()}
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    report['safe_with_a_thread'] = forked_workers.forking_is_safe()
    release.set()
    thread.join()
    options = PipelineOptions(['--direct_running_mode=multi_processing', '--direct_num_workers=2',
                               '--pickle_library=cloudpickle'])
    runner = in_process_runner(options)
    report['runner'] = type(runner).__name__
    zygote = getattr(runner, '_zygote', None)
    report['zygote'] = zygote.pid if zygote else None
    if zygote:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stray:  # a request that is not one
            stray.connect('\0' + zygote.name)
    pipeline = beam.Pipeline(runner=runner, options=options)
    (pipeline
     | beam.Create(list(range(40)))
     | beam.Reshuffle()
     | beam.Map(lambda x: json.dumps([x * x, os.getpid(), os.getppid()]))
     | beam.io.WriteToText(os.path.join(output_dir, 'squares')))
    pipeline.run().wait_until_finish()
    report['zygote_ended'] = zygote is not None and not os.path.exists('/proc/%d' % zygote.pid)

    # A worker that fails (no control endpoint to connect to): the command that started it fails too.
    failing = forked_workers.Zygote()
    environment = {key: value for key, value in os.environ.items() if 'SERVICE_DESCRIPTOR' not in key}
    started = subprocess.run(failing.command, shell=True, env=environment, capture_output=True, text=True,
                             timeout=60, check=False)
    failing.stop()
    report['failing_status'] = started.returncode
    report['failing_stderr'] = started.stderr[-2000:]
    print(json.dumps(report))


if __name__ == '__main__':
    main(sys.argv[1])
