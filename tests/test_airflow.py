"""The Airflow DAGs of templates/airflow/rare_runcommand_flink.py run the detection on the local Flink
cluster: `airflow dags test` of the daily DAG for one logical date, and of the backfill DAG over two days.

Airflow lives in a virtual environment of its own (templates/airflow/install_venv.sh: Airflow and Beam pin
different libraries); its tasks call this interpreter, where the detection is installed.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from flink_support import ROOT, RUN_TIMEOUT, finished_jobs, outputs, run_in_process
from pipelines import rare_runcommand

DAG_FILE = ROOT / 'templates' / 'airflow' / 'rare_runcommand_flink.py'
INSTALL = ROOT / 'templates' / 'airflow' / 'install_venv.sh'
SAMPLE_DIR = ROOT / 'pipelines' / 'sample_data'
GOLDEN_EDGE = ROOT / 'tests' / 'golden' / 'data' / 'edge'

pytestmark = [pytest.mark.flink, pytest.mark.slow]


@pytest.fixture(scope='module')
def airflow(tmp_path_factory):
    """A function running the `airflow` command of the project's Airflow environment, with a fresh
    metadata database and the DAGs' variables pointing at `exports` and `output`."""
    venv = subprocess.run(['bash', str(INSTALL)], capture_output=True, text=True, timeout=1200, check=True)
    airflow_bin = venv.stdout.strip().splitlines()[-1] + '/bin/airflow'
    home = tmp_path_factory.mktemp('airflow-home')
    base_env = {
        # HOME stays the user's: Beam's FlinkRunner finds the job server in ~/.apache_beam/cache/jars.
        'PATH': '/usr/local/bin:/usr/bin:/bin',
        'HOME': os.path.expanduser('~'),
        'AIRFLOW_HOME': str(home),
        'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
        'AIRFLOW__CORE__DAGS_FOLDER': str(DAG_FILE.parent),
        'AIRFLOW_VAR_RARE_RUNCOMMAND_PYTHON': sys.executable,
    }

    def run(args, exports=None, output=None):
        env = dict(base_env)
        if exports:
            env['AIRFLOW_VAR_RARE_RUNCOMMAND_EXPORTS'] = str(exports)
            env['AIRFLOW_VAR_RARE_RUNCOMMAND_OUTPUT'] = str(output)
        completed = subprocess.run([airflow_bin] + args, cwd=home, env=env, capture_output=True, text=True,
                                   timeout=3 * RUN_TIMEOUT)
        assert completed.returncode == 0, (completed.stdout + completed.stderr)[-4000:]
        return completed

    run(['db', 'migrate'])
    return run


def exports_of(files_by_table, directory):
    """An export folder laid out as the DAGs read it: <table>/<file>."""
    for table, source in files_by_table.items():
        (directory / table).mkdir(parents=True)
        shutil.copy(source, directory / table / source.name)
    return directory


def tables_in(directory):
    return {table: directory / table / '**' for table in rare_runcommand.TABLE_OPTIONS}


def test_daily_dag_runs_the_previous_day_on_flink(flink_cluster, airflow, tmp_path):
    exports = exports_of({table: SAMPLE_DIR / (table + '.jsonl.gz') for table in rare_runcommand.TABLE_OPTIONS},
                         tmp_path / 'exports')
    before = finished_jobs()
    airflow(['dags', 'test', '-f', str(DAG_FILE), 'rare_runcommand_flink_daily', '2024-03-02'],
            exports=exports, output=tmp_path / 'out')
    assert len(finished_jobs() - before) == 1, 'the DAG ran one job on the cluster'
    run_in_process(tables_in(exports), tmp_path / 'reference', '--start', '2024-03-01', '--end', '2024-03-02')
    got = outputs(tmp_path / 'out' / 'daily' / '2024-03-01')
    assert got == outputs(tmp_path / 'reference')
    assert len(got['alerts']) == 7


def test_backfill_dag_runs_one_detection_per_day(flink_cluster, airflow, tmp_path):
    exports = exports_of({table: GOLDEN_EDGE / (table + '.jsonl.gz') for table in rare_runcommand.TABLE_OPTIONS},
                         tmp_path / 'exports')
    before = finished_jobs()
    conf = json.dumps({'start': '2024-03-02', 'end': '2024-03-04', 'days_per_run': 1})
    airflow(['dags', 'test', '-f', str(DAG_FILE), '-c', conf, 'rare_runcommand_flink_backfill', '2024-03-05'],
            exports=exports, output=tmp_path / 'out')
    assert len(finished_jobs() - before) == 2, 'one job a day'
    assert sorted(path.name for path in (tmp_path / 'out' / 'backfill').iterdir()) == ['2024-03-02', '2024-03-03']
    for day, next_day in (('2024-03-02', '2024-03-03'), ('2024-03-03', '2024-03-04')):
        run_in_process(tables_in(exports), tmp_path / 'reference' / day, '--start', day, '--end', next_day)
        got = outputs(tmp_path / 'out' / 'backfill' / day)
        assert got == outputs(tmp_path / 'reference' / day)
        assert got['alerts'] and len(got['windows']) == 1
