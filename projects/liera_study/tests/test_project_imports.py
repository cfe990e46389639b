"""The study project's package imports without cycles (lazy imports inside functions included;
scanned as tests/package/test_import_layers.py scans mmliera), and the comparison's functions
stay short (one concern each: none longer than 80 lines)."""
import ast
import os

import import_graph
import pytest
from helpers import ROOT

NAME = 'projects.liera_study.liera_study'
PACKAGE = os.path.join(ROOT, *NAME.split('.'))


@pytest.fixture(scope='module')
def graph():
    return {n: inside for n, (inside, _) in import_graph.graph(NAME).items()}


def test_the_scan_sees_the_known_edges(graph):
    """The scan itself works: edges that must be there are found (a lazy one included)."""
    compare = f'{NAME}.compare'
    assert f'{compare}.runs' in graph[f'{compare}.study']
    assert f'{compare}.errors' in graph[f'{compare}.grid']
    assert f'{compare}.diagnostics' in graph[f'{compare}.study']  # inside a function
    assert f'{compare}.cli' in graph[compare]


def test_no_import_cycles(graph):
    assert import_graph.cycles(graph) == []


def test_the_comparison_has_no_function_longer_than_80_lines():
    long = []
    folder = os.path.join(PACKAGE, 'compare')
    for f in sorted(os.listdir(folder)):
        if f.endswith('.py'):
            path = os.path.join(folder, f)
            for node in ast.walk(ast.parse(open(path).read(), path)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > 80:
                        long.append(f'{f}:{node.lineno} {node.name}: {lines} lines')
    assert long == []
