"""The package's imports run one way: utils/registry -> models (peft standing alone) and datasets
-> checkpoint -> engine -> apis -> cli; no module imports a higher layer (lazy imports inside
functions included), no import cycle, and nothing outside the package (projects/, tests/)."""
import import_graph
import pytest

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


def layer(module):
    keys = [k for k in LAYERS if module == k or module.startswith(k + '.')]
    return LAYERS[max(keys, key=len)] if keys else None


@pytest.fixture(scope='module')
def graph():
    return import_graph.graph('mmliera')


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
    assert import_graph.cycles(edges) == []


def test_the_package_never_imports_the_study_or_the_tests(graph):
    outside = {
        n: sorted(o & {'projects', 'liera_study', 'tests', 'helpers'})
        for n, (_, o) in graph.items()
    }
    assert {n: o for n, o in outside.items() if o} == {}
