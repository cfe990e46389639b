"""The package's imports run one way: utils/registry -> models (peft standing alone) and datasets
-> checkpoint -> engine -> apis -> cli; no module imports a higher layer (lazy imports inside
functions included), no import cycle, and nothing outside the package (projects/, tests/)."""
import ast
import os

import pytest
from helpers import ROOT

PACKAGE = os.path.join(ROOT, 'mmliera')
# the layer of each part; a module may import its own layer and those below
LAYERS = {
    'mmliera.version': 0,
    'mmliera.registry': 0,
    'mmliera.utils': 0,
    'mmliera.models.peft': 1,
    'mmliera.models': 2,
    'mmliera.datasets': 2,
    'mmliera.checkpoint': 3,
    'mmliera.engine': 4,
    'mmliera.apis': 5,
    'mmliera.cli': 6,
}


def modules():
    """{module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith('.py'):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == '__init__':
                    rel = rel[:-1]
                found['.'.join(rel)] = os.path.join(folder, f)
    return found


def imports_of(name, path, known):
    """The package's modules that ``name`` (at ``path``) imports anywhere in its file, and
    every other absolute import it makes (top-level names)."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    inside, outside = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            targets = [
                f'{module}.{a.name}' if f'{module}.{a.name}' in known else module
                for a in node.names
            ]
        else:
            continue
        for t in targets:
            (inside if t.split('.')[0] == 'mmliera' else outside).add(t)
    return {t for t in inside if t in known}, {t.split('.')[0] for t in outside}


def layer(module):
    keys = [k for k in LAYERS if module == k or module.startswith(k + '.')]
    return LAYERS[max(keys, key=len)] if keys else None


@pytest.fixture(scope='module')
def graph():
    known = modules()
    return {n: imports_of(n, p, known) for n, p in known.items()}


def test_the_scan_sees_the_known_edges(graph):
    """The scan itself works: edges that must be there are found (a lazy one included)."""
    assert 'mmliera.models.peft.config' in graph['mmliera.models.peft.layers'][0]
    assert 'mmliera.models.builder' in graph['mmliera.checkpoint.fit'][0]  # inside a function
    assert 'mmliera.apis.model' in graph['mmliera.cli.launch'][0]
    assert 'mmengine' in graph['mmliera.engine.runner.liera_runner'][1]


def test_no_module_imports_a_higher_layer(graph):
    upward = [
        f'{n} (layer {layer(n)}) imports {t} (layer {layer(t)})'
        for n, (inside, _) in graph.items() if n != 'mmliera' for t in inside
        if t != 'mmliera' and layer(t) > layer(n)
    ]
    assert upward == []


def test_peft_stands_on_its_own(graph):
    """models/peft imports only itself and the bottom layer (no freezing, no other model code)."""
    out = [
        f'{n} imports {t}' for n, (inside, _) in graph.items()
        if n.startswith('mmliera.models.peft') for t in inside
        if not t.startswith('mmliera.models.peft') and layer(t) > 0
    ]
    assert out == []


def test_no_import_cycles(graph):
    edges = {n: {t for t in inside if t != 'mmliera'} for n, (inside, _) in graph.items()}
    cycles, state = [], {}

    def visit(n, stack):
        state[n] = 'open'
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 'open':
                cycles.append(' -> '.join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[n] = 'done'

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    assert cycles == []


def test_the_package_never_imports_the_study_or_the_tests(graph):
    outside = {
        n: sorted(o & {'projects', 'liera_study', 'tests', 'helpers'})
        for n, (_, o) in graph.items()
    }
    assert {n: o for n, o in outside.items() if o} == {}
