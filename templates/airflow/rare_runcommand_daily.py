"""Airflow DAGs launching the rare Run Command PowerShell script detection.

* ``rare_runcommand_daily``: every day at 03:00 UTC, the Dataflow Flex Template on the previous UTC day
  (``start`` = the logical date at 00:00, ``end`` = the next day at 00:00: the rule's 1d window);
* ``rare_runcommand_backfill``: triggered by hand with ``start``/``end`` params, one Dataflow job that
  evaluates every window of the range (the windows run in parallel inside the job).

The DAGs for a Flink cluster are in ``rare_runcommand_flink.py``.

Airflow Variables (Admin > Variables): ``rare_runcommand_project``, ``rare_runcommand_region``,
``rare_runcommand_template`` (the spec printed by templates/build_flex_template.sh),
``rare_runcommand_exports`` (gs:// root holding AzureActivity/, DeviceFileEvents/, DeviceEvents/),
``rare_runcommand_output`` (gs:// folder), ``rare_runcommand_temp_location``,
``rare_runcommand_service_account``.

Needs apache-airflow with apache-airflow-providers-google.
"""

import pendulum
from airflow import DAG
from airflow.models.param import Param
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

PROJECT = '{{ var.value.rare_runcommand_project }}'
REGION = '{{ var.value.rare_runcommand_region }}'
TEMPLATE = '{{ var.value.rare_runcommand_template }}'
EXPORTS = '{{ var.value.rare_runcommand_exports }}'
OUTPUT = '{{ var.value.rare_runcommand_output }}'

# The run of logical date D starts at D+1 03:00 UTC (schedule below) and evaluates the day D.
DAY_START = '{{ ds }}T00:00:00Z'
DAY_END = '{{ macros.ds_add(ds, 1) }}T00:00:00Z'

# Every file of the exports is listed and read; only the windows inside [start, end) are evaluated.
# Point the patterns at the date partitions of your export layout to read less (rows in files outside
# the patterns are not seen).
DAILY_PARAMETERS = {
    'azure_activity': EXPORTS + '/AzureActivity/**',
    'device_file_events': EXPORTS + '/DeviceFileEvents/**',
    'device_events': EXPORTS + '/DeviceEvents/**',
    'output_dir': OUTPUT + '/daily/{{ ds }}/',
    'start': DAY_START,
    'end': DAY_END,
    'semantics': 'sentinel',
}

BACKFILL_PARAMETERS = dict(
    DAILY_PARAMETERS,
    output_dir=OUTPUT + '/backfill/{{ params.start }}_{{ params.end }}/',
    start='{{ params.start }}',
    end='{{ params.end }}',
    semantics='{{ params.semantics }}',
)

ENVIRONMENT = {
    'tempLocation': '{{ var.value.rare_runcommand_temp_location }}',
    'serviceAccountEmail': '{{ var.value.rare_runcommand_service_account }}',
    'maxWorkers': 10,
}

DAILY_BODY = {
    'launchParameter': {
        'jobName': 'rare-runcommand-{{ ds_nodash }}',
        'containerSpecGcsPath': TEMPLATE,
        'parameters': DAILY_PARAMETERS,
        'environment': ENVIRONMENT,
    }
}

BACKFILL_BODY = {
    'launchParameter': {
        'jobName': 'rare-runcommand-backfill-{{ ts_nodash | lower }}',
        'containerSpecGcsPath': TEMPLATE,
        'parameters': BACKFILL_PARAMETERS,
        'environment': dict(ENVIRONMENT, maxWorkers=50),
    }
}

DEFAULT_ARGS = {
    'owner': 'detections',
    'retries': 2,
    'retry_delay': pendulum.duration(minutes=15),
}

with DAG(
    dag_id='rare_runcommand_daily',
    description='Rare Run Command PowerShell scripts: Dataflow Flex Template on the previous UTC day',
    # A data-interval timetable in every Airflow version: the run of logical date D is due at D+1 03:00.
    schedule=CronDataIntervalTimetable('0 3 * * *', timezone='UTC'),
    start_date=pendulum.datetime(2024, 3, 1, tz='UTC'),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=['sentinel', 'dataflow'],
) as daily_dag:
    DataflowStartFlexTemplateOperator(
        task_id='launch_flex_template',
        project_id=PROJECT,
        location=REGION,
        body=DAILY_BODY,
        wait_until_finished=True,
    )

with DAG(
    dag_id='rare_runcommand_backfill',
    description='Rare Run Command PowerShell scripts: one Dataflow job over a date range',
    schedule=None,
    start_date=pendulum.datetime(2024, 3, 1, tz='UTC'),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params={
        'start': Param('2024-03-01', type='string', format='date',
                       description='First day (UTC) whose windows are evaluated'),
        'end': Param('2024-04-01', type='string', format='date',
                     description='Day (UTC) at which the last evaluated window ends (exclusive)'),
        'semantics': Param('sentinel', enum=['sentinel', 'strict']),
    },
    tags=['sentinel', 'dataflow', 'backfill'],
) as backfill_dag:
    DataflowStartFlexTemplateOperator(
        task_id='launch_flex_template_backfill',
        project_id=PROJECT,
        location=REGION,
        body=BACKFILL_BODY,
        wait_until_finished=True,
    )
