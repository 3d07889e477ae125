"""The pipelines of the tests: Beam's TestPipeline on the in-process runner."""

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines.options import IN_PROCESS_RUNNER


def in_process_pipeline(options=None):
    """A TestPipeline on Beam's in-process runner, without the Runner API round trip it adds by default.

    The in-process runner runs a pipeline from its Runner API proto already; TestPipeline's round trip
    (the proto read back into Python objects, then written again) doubles the cost of building each
    test's pipeline. tests/test_runners.py checks the round trip of the whole detection.
    """
    return TestPipeline(runner=IN_PROCESS_RUNNER, options=options, argv=['--not-use-test-runner-api'])


def streaming_pipeline():
    """A TestPipeline in streaming mode on Beam's BundleBasedDirectRunner, which runs TestStream;
    without the Runner API round trip either."""
    options = PipelineOptions(['--runner=BundleBasedDirectRunner'])
    options.view_as(StandardOptions).streaming = True
    return TestPipeline(options=options, argv=['--not-use-test-runner-api'])
