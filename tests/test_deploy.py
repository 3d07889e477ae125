"""Deployment artefacts under templates/ checked against the code they launch.

* metadata.json: every parameter is an option of `DetectionOptions` (as ``--help`` lists it), every
  option a launch needs is a parameter, the regexes accept the documented examples and reject bad values;
* Dockerfile: the files it copies exist and the Flex Template variables point at copied files;
* ``--setup_file``: Beam's stager builds the sdist, which installed into a fresh virtual environment runs
  the bundled sample from another directory;
* the scheduler artefacts (Airflow DAGs, Cloud Scheduler body) use only template parameters.

Nothing here needs the network or a cloud account.
"""

import ast
import json
import os
import re
import shlex
import subprocess
import sysconfig
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import rare_runcommand
from pipelines.options import DetectionOptions
from transforms.detect.windows import parse_instant, parse_timespan

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / 'templates'
METADATA = json.loads((TEMPLATES / 'metadata.json').read_text(encoding='utf-8'))
PARAMETERS = {parameter['name']: parameter for parameter in METADATA['parameters']}
SAMPLE_DIR = ROOT / 'pipelines' / 'sample_data'

# Options of DetectionOptions deliberately not offered by the Flex Template, with the reason.
_STREAMING = ('streaming run (with --streaming, Pub/Sub in and out): the Flex Template is the batch launch over '
              'exports; a streaming template needs its own metadata and launch')
NOT_TEMPLATE_PARAMETERS = {
    'input_subscription_azure_activity': _STREAMING,
    'input_subscription_device_file_events': _STREAMING,
    'input_subscription_device_events': _STREAMING,
    'allowed_lateness': _STREAMING,
    'alerts_topic': _STREAMING,
    'dead_letter_topic': _STREAMING,
    'sample': 'a template reads the inputs it is given; the bundled sample is for a first local run',
    'debug': 'a local command-line aid: tracebacks and library warnings on the console',
}


def detection_help(capsys):
    """The text ``--help`` prints for the detection's own options."""
    with pytest.raises(SystemExit):
        DetectionOptions(['--help'])
    return capsys.readouterr().out


def detection_actions():
    """{option name: argparse action} of DetectionOptions, from its own parser."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser
    parser = _BeamArgumentParser(allow_abbrev=False)
    DetectionOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    actions = {}
    for action in parser._actions:  # pylint: disable=protected-access
        for option in action.option_strings:
            if option.startswith('--') and option != '--help':
                actions[option[2:]] = action
    return actions


def launch_required_options():
    """Options a Dataflow launch cannot do without: the three input patterns (without them the pipeline
    reads the sample bundled in the package), the output folder (the default is a local folder of the
    launcher), and any option the parser itself requires."""
    required = set(rare_runcommand.TABLE_OPTIONS.values()) | {'output_dir'}
    required |= {name for name, action in detection_actions().items() if action.required}
    return required


def full_match(regex, value):
    return re.fullmatch(regex, value) is not None


def accepted(parameter, value):
    return all(full_match(regex, value) for regex in parameter.get('regexes', []))


# ---------------------------------------------------------------- metadata.json


def test_metadata_parameters_are_detection_options(capsys):
    listed = set(re.findall(r'--([a-z][a-z0-9_]*)', detection_help(capsys)))
    actions = detection_actions()
    for name in PARAMETERS:
        assert name in actions, '%s is not an option of DetectionOptions' % name
        assert name in listed, '%s is not listed by --help' % name


def test_metadata_parameters_are_complete_and_unique():
    names = [parameter['name'] for parameter in METADATA['parameters']]
    assert len(names) == len(set(names))
    assert METADATA['name'] and METADATA['description']
    for parameter in METADATA['parameters']:
        assert parameter['label'] and parameter['helpText'], parameter['name']
        assert isinstance(parameter['isOptional'], bool), parameter['name']
        assert parameter.get('regexes'), '%s has no regex' % parameter['name']


def test_every_option_a_launch_needs_is_a_required_parameter():
    for name in launch_required_options():
        assert name in PARAMETERS, '%s is missing from metadata.json' % name
        assert PARAMETERS[name]['isOptional'] is False, name
    for name, parameter in PARAMETERS.items():
        if name not in launch_required_options():
            assert parameter['isOptional'] is True, '%s should be optional' % name


def test_every_detection_option_is_a_parameter_or_excluded_with_a_reason():
    missing = sorted(set(detection_actions()) - set(PARAMETERS) - set(NOT_TEMPLATE_PARAMETERS))
    assert not missing, 'options neither in metadata.json nor in NOT_TEMPLATE_PARAMETERS: %s' % missing


PARAM_TYPES = {'DEFAULT', 'TEXT', 'GCS_READ_BUCKET', 'GCS_WRITE_BUCKET', 'GCS_READ_FILE', 'GCS_WRITE_FILE',
               'GCS_READ_FOLDER', 'GCS_WRITE_FOLDER', 'PUBSUB_TOPIC', 'PUBSUB_SUBSCRIPTION', 'BIGQUERY_TABLE',
               'BOOLEAN', 'ENUM'}


def test_parameter_types_are_dataflow_parameter_types():
    for parameter in METADATA['parameters']:
        assert parameter.get('paramType', 'DEFAULT') in PARAM_TYPES, parameter['name']
        assert ('enumOptions' in parameter) == (parameter.get('paramType') == 'ENUM'), parameter['name']


def test_choice_parameters_offer_exactly_the_parser_choices():
    for name, action in detection_actions().items():
        if not action.choices or name not in PARAMETERS:
            continue
        parameter = PARAMETERS[name]
        choices = [str(choice) for choice in action.choices]
        assert parameter['paramType'] == 'ENUM'
        assert [option['value'] for option in parameter['enumOptions']] == choices
        for choice in choices:
            assert accepted(parameter, choice), (name, choice)
        for bad in ('', choices[0].upper(), choices[0] + ' ', 'x' + choices[0], 'none'):
            if bad not in choices:
                assert not accepted(parameter, bad), (name, bad)


GOOD = {
    'azure_activity': ['gs://acme-sentinel-exports/AzureActivity/**',
                       'gs://acme-sentinel-exports/AzureActivity/y=2024/m=03/d=01/*.json',
                       'gs://my.bucket_1/exports/AzureActivity-*.jsonl.gz'],
    'output_dir': ['gs://acme-detections', 'gs://acme-detections/', 'gs://acme-detections/rare/2024-03-01/'],
    'rule': ['gs://acme-detections/rules/RareRunCommandPowerShellScript.yaml', 'gs://a-b/rule.yml'],
    'query_period': ['1d', '2d', '12h', '90m', '30s', '1.5h', '1.00:00:00', '06:00', '2.12:30:00.5'],
    'start': ['2024-03-01', '2024-03-01T00:00', '2024-03-01T00:00:00Z', '2024-03-01T06:00:00.1234567+02:00',
              '2024-02-29T23:59:59-05:30'],
}
BAD = {
    'azure_activity': ['', '/data/AzureActivity/**', 'AzureActivity/**', 'gs://', 'gs://bucket', 'gs://bucket/',
                       'gs://Acme/AzureActivity/*', 's3://acme/AzureActivity/*', 'gs://b/x'],
    'output_dir': ['', 'out/', '/tmp/out', 'gs://', 'gs://UPPER/out', 'file:///tmp/out'],
    'rule': ['', 'rule.yaml', 'gs://acme/rules/rule.json', 'gs://acme/rules/'],
    'query_period': ['', '1', 'd', '1w', '-1d', '1 d', '1day ago', 'P1D', 'time(1d)', '1:2'],
    'start': ['', '2024-3-1', '01/03/2024', '2024-03-01 00:00:00', '20240301', 'yesterday', '2024-03-01T00'],
}
GOOD.update({
    'strict_operations': ['Microsoft.Compute/virtualMachines/runCommand/action',
                          'Microsoft.Compute/virtualMachines/runCommand/action,'
                          'Microsoft.HybridCompute/machines/runCommands/write'],
    'strict_process_names': ['RunCommandExtension.exe', 'RunCommandExtension.exe,RunCommandHandlerWindows.exe'],
    'history_days': ['0', '7', '30', '365'],
    'baseline_in': ['gs://acme-detections/baseline/2024-02-29.jsonl', 'gs://acme-detections/baseline.avro'],
})
BAD.update({
    'strict_operations': ['', ',', 'a,,b', 'a, b', 'Microsoft.Compute/virtualMachines/runCommand/action,'],
    'strict_process_names': ['', 'RunCommandExtension', 'a.exe,', 'a.exe, b.exe', 'C:\\x\\a.exe'],
    'history_days': ['', '-1', '1.5', 'seven', '12345'],
    'baseline_in': ['', 'baseline.jsonl', '/tmp/baseline.jsonl', 'gs://acme-detections/'],
})
GOOD['baseline_out'], BAD['baseline_out'] = GOOD['baseline_in'], BAD['baseline_in']
for _name in ('strict_max_run_delay', 'strict_look_ahead'):
    GOOD[_name], BAD[_name] = GOOD['query_period'], BAD['query_period']
GOOD['strict_scale_set_prefixes'] = ['web-ss=webss', 'ss1=ss1,ss1=ss1b,api_ss.2=api']
BAD['strict_scale_set_prefixes'] = ['', 'web-ss', '=web', 'ss=', 'a=b,', 'a=b, c=d', 'a=b=c']
for _name in ('device_file_events', 'device_events'):
    GOOD[_name], BAD[_name] = GOOD['azure_activity'], BAD['azure_activity']
for _name in ('query_frequency', 'window_offset'):
    GOOD[_name], BAD[_name] = GOOD['query_period'], BAD['query_period']
GOOD['end'], BAD['end'] = GOOD['start'], BAD['start']


@pytest.mark.parametrize('name', sorted(GOOD))
def test_regexes_accept_good_values(name):
    for value in GOOD[name]:
        assert accepted(PARAMETERS[name], value), (name, value)


@pytest.mark.parametrize('name', sorted(BAD))
def test_regexes_reject_bad_values(name):
    for value in BAD[name]:
        assert not accepted(PARAMETERS[name], value), (name, value)


def test_documented_examples_are_accepted():
    examples = 0
    for name, parameter in PARAMETERS.items():
        for example in re.findall(r'(?:Example: |e\.g\. )(.+?)(?:\.$|\.\s|$)', parameter['helpText']):
            for value in re.split(r',\s*|\s+or\s+', example):
                assert accepted(parameter, value.strip()), (name, value)
                examples += 1
    assert examples >= len(PARAMETERS) - 3  # only the enums document no example


def test_accepted_timespans_and_instants_parse_like_the_pipeline():
    """What a regex lets through must not fail at launch in the pipeline's own parsers."""
    for name in ('query_period', 'query_frequency', 'window_offset', 'strict_max_run_delay', 'strict_look_ahead'):
        for value in GOOD[name]:
            assert parse_timespan(value) > 0
    for name in ('start', 'end'):
        for value in GOOD[name]:
            parse_instant(value)


def test_every_parameter_is_known_to_the_options_it_is_passed_to():
    """A launch passes each parameter as --name=value; the pipeline options must read it back."""
    argv = ['--%s=%s' % (name, GOOD.get(name, [None])[0] or parameter['enumOptions'][-1]['value'])
            for name, parameter in PARAMETERS.items()]
    options = PipelineOptions(argv).view_as(DetectionOptions)
    for name in PARAMETERS:
        assert getattr(options, name) is not None, name


def test_regexes_stay_in_the_java_python_common_syntax():
    """Dataflow checks the regexes with Java's engine, these tests with Python's: no dialect-only syntax."""
    for parameter in METADATA['parameters']:
        for regex in parameter['regexes']:
            assert regex.startswith('^') and regex.endswith('$'), regex
            for construct in ('(?P', '\\Z', '\\A', '(?#', '\\d', '\\w', '\\s'):
                assert construct not in regex, (parameter['name'], construct)
            re.compile(regex)


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions():
    text = (TEMPLATES / 'Dockerfile').read_text(encoding='utf-8').replace('\\\n', ' ')
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            keyword, _, rest = line.partition(' ')
            yield keyword.upper(), rest.strip()


def dockerfile_copies():
    """[(source path in the build context, destination path in the image)]."""
    args, workdir, copies = {}, '/', []
    for keyword, rest in dockerfile_instructions():
        if keyword == 'ARG':
            name, _, default = rest.partition('=')
            args[name] = default
        elif keyword == 'WORKDIR':
            workdir = _expand(rest, args)
        elif keyword in ('COPY', 'ADD'):
            *sources, destination = shlex.split(rest)
            destination = os.path.join(workdir, _expand(destination, args))
            for source in sources:
                target = destination
                if destination.endswith('/') and len(sources) > 1 or destination.endswith('./'):
                    target = os.path.join(destination, os.path.basename(source.rstrip('/')))
                copies.append((source, os.path.normpath(target)))
    return copies


def _expand(text, args):
    return re.sub(r'\$\{(\w+)\}|\$(\w+)', lambda m: args.get(m.group(1) or m.group(2), ''), text)


def dockerfile_env():
    args, env = {}, {}
    for keyword, rest in dockerfile_instructions():
        if keyword == 'ARG':
            name, _, default = rest.partition('=')
            args[name] = default
        elif keyword == 'ENV':
            for assignment in shlex.split(rest):
                name, _, value = assignment.partition('=')
                env[name] = _expand(value, args)
    return env


def test_dockerfile_uses_the_python311_launcher_base():
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == 'FROM']
    assert froms == ['gcr.io/dataflow-templates-base/python311-template-launcher-base']


def test_dockerfile_copies_only_existing_files():
    copies = dockerfile_copies()
    assert copies
    for source, _ in copies:
        assert (ROOT / source).exists(), 'COPY source %s does not exist' % source


def setup_packages_and_files():
    """(packages setup.py installs, files setup.py reads): its ``find_packages(include=...)`` run here."""
    import setuptools  # pylint: disable=import-outside-toplevel
    setup = ast.parse((ROOT / 'setup.py').read_text(encoding='utf-8'))
    packages, files = None, []
    for node in ast.walk(setup):
        if isinstance(node, ast.keyword) and node.arg == 'packages':
            [include] = [keyword.value for keyword in node.value.keywords if keyword.arg == 'include']
            packages = setuptools.find_packages(where=str(ROOT), include=ast.literal_eval(include))
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'open':
            files.append(ast.literal_eval(node.args[0]))
    return packages, files


def test_setup_py_installs_every_package_of_the_detection_and_no_tool():
    packages, _ = setup_packages_and_files()
    on_disk = {str(init.parent.relative_to(ROOT)).replace('/', '.')
               for top in ('pipelines', 'transforms', 'schemas') for init in (ROOT / top).rglob('__init__.py')}
    assert set(packages) == on_disk
    assert {'transforms.read', 'transforms.read.formats', 'transforms.detect', 'transforms.write'} <= on_disk
    assert not {'tools', 'benchmarks', 'tests'} & {package.split('.')[0] for package in packages}


def test_dockerfile_copies_every_package_of_setup_py_and_what_setup_py_reads():
    sources = {source.rstrip('/') for source, _ in dockerfile_copies()}
    packages, files = setup_packages_and_files()
    assert packages
    for needed in ['setup.py', 'MANIFEST.in'] + files + sorted({p.split('.')[0] for p in packages}):
        assert needed in sources, '%s is not copied into the launcher image' % needed


def test_flex_template_variables_point_at_copied_files():
    env = dockerfile_env()
    destinations = {destination: source for source, destination in dockerfile_copies()}
    py_file = env['FLEX_TEMPLATE_PYTHON_PY_FILE']
    setup_file = env['FLEX_TEMPLATE_PYTHON_SETUP_FILE']
    assert destinations[py_file] == 'templates/main.py'
    assert destinations[setup_file] == 'setup.py'


def test_launcher_main_defaults_to_dataflow_and_keeps_the_parameters():
    sys.path.insert(0, str(TEMPLATES))
    try:
        import main as launcher  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(str(TEMPLATES))
    argv = ['--azure_activity=gs://b/a/**', '--output_dir=gs://b/out']
    assert launcher.launch_args(argv) == ['--runner=DataflowRunner'] + argv
    assert launcher.launch_args(['--runner=FlinkRunner'] + argv) == ['--runner=FlinkRunner'] + argv


# ---------------------------------------------------------------- --setup_file staging


def _can_build_offline():
    """Whether the running interpreter can build a wheel from the sdist without the network: setuptools,
    and `wheel` or setuptools>=70.1 (where bdist_wheel moved into setuptools)."""
    try:
        import setuptools  # pylint: disable=import-outside-toplevel
    except ImportError:
        return False
    try:
        import wheel  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        return True
    except ImportError:
        major, minor = (int(part) for part in setuptools.__version__.split('.')[:2])
        return (major, minor) >= (70, 1)


@pytest.mark.slow
@pytest.mark.skipif(not _can_build_offline(),
                    reason='building the sdist without the network needs setuptools and `wheel` (or setuptools>=70.1)')
def test_setup_file_sdist_installed_in_a_fresh_venv_runs_the_sample(tmp_path):
    from apache_beam.runners.portability.stager import Stager  # pylint: disable=import-outside-toplevel

    # Stage from a copy of exactly what the launcher image gets, as the Flex Template launcher does.
    context = tmp_path / 'context'
    for source, _ in dockerfile_copies():
        if source.startswith('templates/'):
            continue
        _copy(ROOT / source, context / source.rstrip('/'))
    staging = tmp_path / 'staging'
    staging.mkdir()
    options = PipelineOptions(['--setup_file=%s' % (context / 'setup.py')])
    resources = Stager.create_job_resources(options, str(staging), log_submission_env_dependencies=False)
    staged = {}
    for resource in resources:
        # beam:artifact:type:file:v1 -> local path, beam:artifact:role:staging_to:v1 -> staged name
        from apache_beam.portability.api import beam_runner_api_pb2  # pylint: disable=import-outside-toplevel
        path = beam_runner_api_pb2.ArtifactFilePayload.FromString(resource.type_payload).path
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(resource.role_payload).staged_name
        staged[name] = path
    assert 'workflow.tar.gz' in staged, staged
    sdist = Path(staged['workflow.tar.gz'])
    assert sdist.name.endswith('.tar.gz') and sdist.exists()

    env = {key: value for key, value in os.environ.items() if key not in ('PYTHONPATH', 'PYTHONHOME')}
    # The wheel is built by the running interpreter, whose setuptools and wheel the skip check looked at.
    wheels = tmp_path / 'wheels'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-index',
                    '--no-build-isolation', '--wheel-dir', str(wheels), str(sdist)],
                   check=True, env=env, cwd=tmp_path)
    wheel_file, = wheels.glob('*.whl')
    # A fresh environment that sees the running one's dependencies (Beam, ...) through a .pth file, not
    # the base interpreter's packages, nor the project's own editable install (its .pth is not read).
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = venv / 'bin' / 'python'
    site_packages = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                   check=True, capture_output=True, text=True).stdout.strip()
    outer = sorted({sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']})
    Path(site_packages, 'outer_environment.pth').write_text('\n'.join(outer) + '\n', encoding='utf-8')
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--quiet', '--no-deps',
                    '--no-index', str(wheel_file)], check=True, env=env, cwd=tmp_path)

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    # The read step's C extension is compiled from the sdist's source, as on a worker.
    where = subprocess.run([str(python), '-c', 'import pipelines, transforms; print(pipelines.__file__); '
                            'print(transforms.__file__); from transforms.read import _blockscan; '
                            'print(_blockscan.__file__)'], check=True, env=env, cwd=elsewhere,
                           capture_output=True, text=True).stdout.split()
    assert len(where) == 3
    for module_file in where:
        assert Path(module_file).resolve().is_relative_to(venv.resolve()), where

    output = elsewhere / 'out'
    run = subprocess.run([str(python), '-m', 'pipelines.rare_runcommand', '--sample', '--output_dir', str(output)],
                         env=env, cwd=elsewhere, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    alerts = [json.loads(line) for path in sorted(output.glob('alerts-*.jsonl'))
              for line in path.read_text(encoding='utf-8').splitlines()]
    expected = _expected_sample_alerts()
    assert sorted(_alert_key(alert['QueryResult']) for alert in alerts) == sorted(map(_alert_key, expected))
    assert run.stdout.count('ALERT ') == len(expected)


def _copy(source, target):
    import shutil  # pylint: disable=import-outside-toplevel
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '*.so'))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _expected_sample_alerts():
    path = SAMPLE_DIR / 'expected_alerts.jsonl'
    if not path.exists():
        pytest.skip('the bundled sample has no expected_alerts.jsonl')
    return [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines() if line.strip()]


def _alert_key(result):
    return (result['PowershellFileName'], result['VirtualMachineName'], result['Caller'],
            result['ScriptFingerprintHash'])


# ---------------------------------------------------------------- schedulers


AIRFLOW_DAGS = TEMPLATES / 'airflow' / 'rare_runcommand_daily.py'


def _require(path):
    if not path.exists():
        pytest.skip('%s is not written yet' % path.relative_to(ROOT))


def _dag_module():
    _require(AIRFLOW_DAGS)
    return ast.parse(AIRFLOW_DAGS.read_text(encoding='utf-8'), filename=str(AIRFLOW_DAGS))


def test_cloud_scheduler_body_uses_template_parameters_only():
    _require(TEMPLATES / 'cloud_scheduler_body.json')
    body = json.loads((TEMPLATES / 'cloud_scheduler_body.json').read_text(encoding='utf-8'))
    launch = body['launchParameter']
    assert launch['containerSpecGcsPath'].startswith('gs://')
    parameters = launch['parameters']
    assert set(parameters) <= set(PARAMETERS)
    for name, parameter in PARAMETERS.items():
        if not parameter['isOptional']:
            assert name in parameters, name
    for name, value in parameters.items():
        if '${' not in value and '{{' not in value:
            assert accepted(PARAMETERS[name], value), (name, value)


def test_airflow_dags_parse_and_pass_only_template_parameters():
    module = _dag_module()
    compile(module, str(AIRFLOW_DAGS), 'exec')
    values = _module_constants(module)
    flex_calls = _calls(module, 'DataflowStartFlexTemplateOperator')
    assert flex_calls
    for call in flex_calls:
        keywords = {keyword.arg: keyword.value for keyword in call.keywords}
        assert {'task_id', 'body', 'location', 'project_id'} <= set(keywords)
        body = _resolve(keywords['body'], values)
        parameters = _resolve(body['launchParameter']['parameters'], values)
        assert set(parameters) <= set(PARAMETERS), set(parameters) - set(PARAMETERS)
        for name, parameter in PARAMETERS.items():
            if not parameter['isOptional']:
                assert name in parameters, name
        for name, value in parameters.items():
            assert accepted(PARAMETERS[name], _render(value)), (name, value, _render(value))


def test_airflow_dags_import_with_airflow_if_installed():
    _require(AIRFLOW_DAGS)
    pytest.importorskip('airflow', reason='apache-airflow is not installed: the DAGs are checked with ast only')
    pytest.importorskip('airflow.providers.google', reason='apache-airflow-providers-google is not installed')
    from airflow.models import DagBag  # pylint: disable=import-outside-toplevel
    bag = DagBag(dag_folder=str(AIRFLOW_DAGS), include_examples=False)
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) >= {'rare_runcommand_daily', 'rare_runcommand_backfill'}


AIRFLOW_SAMPLE_CONTEXT = {
    'ds': '2024-03-01', 'macros.ds_add(ds, 1)': '2024-03-02', 'params.start': '2024-03-01',
    'params.end': '2024-04-01', 'params.semantics': 'strict',
    'var.value.rare_runcommand_exports': 'gs://acme-sentinel-exports',
    'var.value.rare_runcommand_output': 'gs://acme-detections/rare_runcommand',
}


def _render(value):
    """The value of a templated string for a sample run (the few Jinja expressions the DAGs use)."""
    def substitute(match):
        expression = match.group(1).strip()
        assert expression in AIRFLOW_SAMPLE_CONTEXT, 'unexpected template expression %r' % expression
        return AIRFLOW_SAMPLE_CONTEXT[expression]
    return re.sub(r'\{\{(.*?)\}\}', substitute, value)


def _calls(module, name):
    return [node for node in ast.walk(module)
            if isinstance(node, ast.Call) and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _module_constants(module):
    """Module-level NAME = <literal or dict/list of literals and names> assignments."""
    values = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = node.value
    return values


def _resolve(node, values):
    """A literal view of `node`: names resolved through module constants, calls of dict() and ** merges
    expanded, string concatenations joined, other expressions kept as placeholders."""
    if not isinstance(node, ast.AST):
        return node
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _resolve(node.left, values), _resolve(node.right, values)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    if isinstance(node, ast.Name) and node.id in values:
        return _resolve(values[node.id], values)
    if isinstance(node, ast.Dict):
        result = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                result.update(_resolve(value, values))
            else:
                result[_resolve(key, values)] = _resolve(value, values)
        return result
    if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict':
        result = {}
        for arg in node.args:
            result.update(_resolve(arg, values))
        for keyword in node.keywords:
            if keyword.arg is None:
                result.update(_resolve(keyword.value, values))
            else:
                result[keyword.arg] = _resolve(keyword.value, values)
        return result
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_resolve(element, values) for element in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in values:
        raise AssertionError('cannot resolve a call of %s statically' % node.func.id)
    return '<expr>'


def test_shell_scripts_pass_only_valid_template_parameters(tmp_path):
    _require(TEMPLATES / 'run_flex_template.sh')
    for script in ('build_flex_template.sh', 'run_flex_template.sh'):
        subprocess.run(['bash', '-n', str(TEMPLATES / script)], check=True)
    build = (TEMPLATES / 'build_flex_template.sh').read_text(encoding='utf-8')
    assert '--metadata-file templates/metadata.json' in build and "'templates/Dockerfile'" in build
    env = dict(os.environ, PROJECT='acme-sec', REGION='europe-west1', TEMPLATE='gs://acme-dataflow/t.json',
               EXPORTS='gs://acme-sentinel-exports', OUTPUT='gs://acme-detections/rare_runcommand', DRY_RUN='1',
               QUERY_PERIOD='2d', QUERY_FREQUENCY='1d', WINDOW_OFFSET='6h', SEMANTICS='strict',
               RULE='gs://acme-detections/rules/rule.yaml')
    for window in ([], ['2024-03-01'], ['2024-03-01T06:00:00Z', '2024-03-03T06:00:00Z']):
        printed = subprocess.run(['bash', str(TEMPLATES / 'run_flex_template.sh')] + window, env=env,
                                 cwd=tmp_path, check=True, capture_output=True, text=True).stdout
        command = shlex.split(printed)
        assert command[:4] == ['gcloud', 'dataflow', 'flex-template', 'run']
        assert re.fullmatch(r'[a-z]([-a-z0-9]*[a-z0-9])?', command[4]), command[4]
        value = command[command.index('--parameters') + 1]
        assert value.startswith('^~^')
        parameters = dict(item.split('=', 1) for item in value[3:].split('~'))
        assert set(parameters) <= set(PARAMETERS), set(parameters) - set(PARAMETERS)
        for name, parameter in PARAMETERS.items():
            if not parameter['isOptional']:
                assert name in parameters, name
        for name, text in parameters.items():
            assert accepted(PARAMETERS[name], text), (name, text)
        if window:
            assert parameters['start'] == window[0]
            assert parameters['end'] == (window[1] if len(window) > 1 else '2024-03-02')
        assert parse_instant(parameters['end']) > parse_instant(parameters['start'])
