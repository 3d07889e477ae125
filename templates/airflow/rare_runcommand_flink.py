"""Airflow DAGs running the rare Run Command PowerShell script detection on a Flink session cluster.

* ``rare_runcommand_flink_daily``: every day at 03:00 UTC, the UTC day before (the rule's one-day
  window). Its timetable is a cron trigger, so a run's logical date is the moment it is due: the run
  of 2024-03-02 03:00 (``airflow dags test rare_runcommand_flink_daily 2024-03-02``) evaluates
  ``--start 2024-03-01 --end 2024-03-02``;
* ``rare_runcommand_flink_backfill``: triggered with ``start``, ``end`` and ``days_per_run`` params, one
  detection run per period of ``days_per_run`` days, at most two at a time.

Each task submits the pipeline with Beam's FlinkRunner from the environment where the detection is
installed, not from Airflow's: Airflow and Beam pin different versions of common libraries, so they live
in two virtual environments, and the task calls the detection's interpreter
(``rare_runcommand_python``). The detection checks that the cluster and the worker pool answer before it
does any work, and exits non-zero on any failure, which fails the task (and Airflow retries it).

Settings, as Airflow Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables); defaults in brackets:

* ``rare_runcommand_python``: interpreter of the environment with the detection installed [python3];
* ``rare_runcommand_exports``: folder (or gs://, s3:// root) holding ``AzureActivity/``,
  ``DeviceFileEvents/`` and ``DeviceEvents/`` exports, read with ``**`` patterns [required];
* ``rare_runcommand_output``: folder under which each run writes ``<kind>/<start>/`` [required];
* ``rare_runcommand_flink_master``: the JobManager's REST address [localhost:8081];
* ``rare_runcommand_worker_pool``: the Beam SDK worker pool (EXTERNAL environment) [localhost:50000];
* ``rare_runcommand_parallelism``: Flink parallelism of each run [2];
* ``rare_runcommand_semantics``: sentinel or strict [sentinel].

Needs Airflow 3 with apache-airflow-providers-standard: templates/airflow/install_venv.sh.
"""

import datetime

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, task
from airflow.timetables.trigger import CronTriggerTimetable


def _variable(name, default=None):
    if default is None:
        return '{{ var.value.rare_runcommand_%s }}' % name
    return "{{ var.value.get('rare_runcommand_%s', '%s') }}" % (name, default)


EXPORTS = _variable('exports')

# The detection, for the period [$PERIOD_START, $PERIOD_END) given in the task's environment.
DETECTION_COMMAND = ' '.join([
    '"%s" -m pipelines.rare_runcommand' % _variable('python', 'python3'),
    '--runner FlinkRunner',
    '--flink_master "%s"' % _variable('flink_master', 'localhost:8081'),
    '--environment_type EXTERNAL',
    '--environment_config "%s"' % _variable('worker_pool', 'localhost:50000'),
    '--parallelism "%s"' % _variable('parallelism', '2'),
    '--azure_activity "%s/AzureActivity/**"' % EXPORTS,
    '--device_file_events "%s/DeviceFileEvents/**"' % EXPORTS,
    '--device_events "%s/DeviceEvents/**"' % EXPORTS,
    '--semantics "%s"' % _variable('semantics', 'sentinel'),
    '--start "$PERIOD_START" --end "$PERIOD_END"',
    '--output_dir "%s/$RUN_KIND/$PERIOD_START/"' % _variable('output'),
])

DEFAULT_ARGS = {
    'owner': 'detections',
    'retries': 2,
    'retry_delay': pendulum.duration(minutes=10),
}


def periods(start, end, days_per_run):
    """[{'PERIOD_START': day, 'PERIOD_END': day}, ...] covering [start, end) in steps of days_per_run."""
    first = datetime.date.fromisoformat(start)
    last = datetime.date.fromisoformat(end)
    if days_per_run < 1 or first >= last:
        raise ValueError('need start < end and days_per_run >= 1, got %s, %s, %s' % (start, end, days_per_run))
    step = datetime.timedelta(days=days_per_run)
    result = []
    while first < last:
        result.append({'RUN_KIND': 'backfill', 'PERIOD_START': first.isoformat(),
                       'PERIOD_END': min(first + step, last).isoformat()})
        first += step
    return result


with DAG(
    dag_id='rare_runcommand_flink_daily',
    description='Rare Run Command PowerShell scripts on Flink, for the previous UTC day',
    schedule=CronTriggerTimetable('0 3 * * *', timezone='UTC'),
    start_date=pendulum.datetime(2024, 3, 1, tz='UTC'),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=['sentinel', 'flink'],
) as daily_dag:
    BashOperator(
        task_id='detect_on_flink',
        bash_command=DETECTION_COMMAND,
        env={'RUN_KIND': 'daily', 'PERIOD_START': '{{ macros.ds_add(ds, -1) }}', 'PERIOD_END': '{{ ds }}'},
        append_env=True,
    )

with DAG(
    dag_id='rare_runcommand_flink_backfill',
    description='Rare Run Command PowerShell scripts on Flink over a date range, one run per period',
    schedule=None,
    start_date=pendulum.datetime(2024, 3, 1, tz='UTC'),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params={
        'start': Param('2024-03-01', type='string', format='date',
                       description='First day (UTC) whose windows are evaluated'),
        'end': Param('2024-04-01', type='string', format='date',
                     description='Day (UTC) at which the last evaluated window ends (exclusive)'),
        'days_per_run': Param(1, type='integer', minimum=1,
                              description='Days evaluated by each detection run'),
    },
    tags=['sentinel', 'flink', 'backfill'],
) as backfill_dag:

    @task
    def backfill_periods(params=None):
        return periods(params['start'], params['end'], int(params['days_per_run']))

    BashOperator.partial(
        task_id='detect_on_flink',
        bash_command=DETECTION_COMMAND,
        append_env=True,
        max_active_tis_per_dagrun=2,
    ).expand(env=backfill_periods())
