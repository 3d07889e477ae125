"""The layout's import rule (README, "Layout"), read from the source of every module with `ast`.

* ``transforms`` has three rooms, and imports run one way: ``transforms.write`` may import
  ``detect`` and ``read``, ``transforms.detect`` may import ``read``, ``transforms.read`` imports
  neither. Nothing in ``transforms`` imports ``pipelines`` (which wires the rooms and owns the
  options), and nothing shipped imports the development folders (``tools``, ``benchmarks``, ``tests``).
* The modules of ``transforms`` import one another without a cycle, counting the imports inside
  functions as well (a cycle hidden in a function is still a cycle).
* The pure helpers at the bottom of the rooms import no Beam: plain functions on plain values.

Every import counts, wherever it stands in a module.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ('pipelines', 'transforms')
DEVELOPMENT = ('tools', 'benchmarks', 'tests')

# room -> the rooms it may import (its own included).
ALLOWED = {
    'read': {'read'},
    'detect': {'detect', 'read'},
    'write': {'write', 'detect', 'read'},
}

PURE_HELPERS = (
    'transforms.read.schema', 'transforms.read.dynamic', 'transforms.read.ingest', 'transforms.read.dead_letter',
    'transforms.read.bounded_json', 'transforms.read.formats.compressed',
    'transforms.read.prefilter', 'transforms.read.progress', 'transforms.read.formats', 'transforms.read.formats.lines',
    'transforms.read.formats.records', 'transforms.read.formats.json_lines', 'transforms.read.formats.csv_export',
    'transforms.read.formats.eventhub_capture', 'transforms.read.formats.activity_log',
    'transforms.detect.kql', 'transforms.detect.semantics',
)


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def modules(tops=SHIPPED):
    """{module name: path} of every module under the given top-level packages."""
    return {module_name(path): path for top in tops for path in sorted((ROOT / top).rglob('*.py'))}


def imports_of(path, known):
    """The modules a file imports, anywhere in it: ``from a.b import c`` is ``a.b.c`` when that is a
    module of `known`, else ``a.b``."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = base + '.' + alias.name
                found.add(candidate if candidate in known else base)
    return found


def room(module):
    """'read', 'detect' or 'write' for a module of transforms; None for the package itself."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else None


def top(module):
    return module.split('.')[0]


KNOWN = modules(SHIPPED + DEVELOPMENT[:2])
GRAPH = {name: imports_of(path, KNOWN) for name, path in modules().items()}
TRANSFORMS = sorted(name for name in GRAPH if top(name) == 'transforms')


def test_the_three_rooms_are_what_ls_transforms_shows():
    entries = sorted(path.name for path in (ROOT / 'transforms').iterdir() if path.name != '__pycache__')
    assert entries == ['__init__.py', 'detect', 'read', 'write']
    assert {room(name) for name in TRANSFORMS} == {None, 'read', 'detect', 'write'}


@pytest.mark.parametrize('module', TRANSFORMS)
def test_imports_run_one_way_between_the_rooms(module):
    wrong = sorted(imported for imported in GRAPH[module]
                   if top(imported) == 'transforms' and room(imported) not in ALLOWED.get(room(module), set()))
    assert wrong == [], '%s (%s) may import only %s' % (module, room(module), sorted(ALLOWED.get(room(module), ())))


@pytest.mark.parametrize('module', sorted(GRAPH))
def test_nothing_shipped_imports_pipelines_from_transforms_or_the_development_folders(module):
    forbidden = set(DEVELOPMENT) | ({'pipelines'} if top(module) == 'transforms' else set())
    assert sorted(imported for imported in GRAPH[module] if top(imported) in forbidden) == []


def test_transforms_modules_import_one_another_without_a_cycle():
    edges = {name: {imported for imported in GRAPH[name] if imported in GRAPH and imported != name}
             for name in TRANSFORMS}
    done, on_path, cycles = set(), [], []

    def visit(name):
        if name in on_path:
            cycles.append(on_path[on_path.index(name):] + [name])
            return
        if name in done:
            return
        on_path.append(name)
        for imported in sorted(edges[name]):
            visit(imported)
        on_path.pop()
        done.add(name)

    for name in TRANSFORMS:
        visit(name)
    assert cycles == []


@pytest.mark.parametrize('module', PURE_HELPERS)
def test_pure_helpers_import_no_beam(module):
    assert module in GRAPH
    assert sorted(imported for imported in GRAPH[module] if top(imported) == 'apache_beam') == []
