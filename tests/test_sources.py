"""ReadTable: what a pattern reads when it matches files, none, or cannot be listed."""

import apache_beam as beam
import pytest
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import rare_runcommand
from pipelines.options import IN_PROCESS_RUNNER
from transforms.read.schema import AZURE_ACTIVITY
from transforms.read.sources import ReadTable, UnreadableInput


def test_a_pattern_whose_files_cannot_be_listed_fails_the_run(tmp_path):
    # gs:// without Beam's Google Cloud file system, or any scheme Beam does not know: Beam cannot
    # list the pattern. Reading it as an empty table would give a run without alerts and exit 0.
    with pytest.raises(UnreadableInput, match="AzureActivity: cannot list the files of 'nosuchfs://bucket/\\*'"):
        rare_runcommand.run(['--runner=' + IN_PROCESS_RUNNER, '--output_dir', str(tmp_path),
                             '--azure_activity', 'nosuchfs://bucket/*'])
    assert list(tmp_path.iterdir()) == []


def test_a_listing_error_of_the_file_system_fails_the_run(monkeypatch):
    def refuse(patterns, limits=None):
        raise BeamIOError('Match operation failed', {patterns[0]: PermissionError('403 Forbidden')})

    monkeypatch.setattr(FileSystems, 'match', staticmethod(refuse))
    pipeline = beam.Pipeline(options=None)
    with pytest.raises(UnreadableInput, match='403 Forbidden'):
        _ = pipeline | ReadTable(AZURE_ACTIVITY, 'gs://no-such-bucket/*')


def test_a_pattern_matching_no_file_reads_as_an_empty_table(tmp_path):
    with TestPipeline(runner=IN_PROCESS_RUNNER) as pipeline:
        read = pipeline | ReadTable(AZURE_ACTIVITY, str(tmp_path / 'none' / '*.jsonl'))
        assert_that(read.rows, equal_to([]), label='NoRows')
        assert_that(read.dead_letter, equal_to([]), label='NoDeadLetters')
