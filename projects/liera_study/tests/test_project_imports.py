"""The study project's package imports without cycles (lazy imports inside functions included;
scanned as tests/package/test_import_layers.py scans mmliera), and the comparison's functions
stay short (one concern each: none longer than 80 lines)."""
import ast
import os

import pytest
from helpers import ROOT

NAME = 'projects.liera_study.liera_study'
PACKAGE = os.path.join(ROOT, *NAME.split('.'))


def modules():
    """{module name: path} of every module of the project's package."""
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
    """The package's modules that ``name`` (at ``path``) imports anywhere in its file."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    inside = set()
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
        inside |= {t for t in targets if t.startswith(NAME)}
    return {t for t in inside if t in known}


@pytest.fixture(scope='module')
def graph():
    known = modules()
    return {n: imports_of(n, p, known) for n, p in known.items()}


def test_the_scan_sees_the_known_edges(graph):
    """The scan itself works: edges that must be there are found (a lazy one included)."""
    compare = f'{NAME}.compare'
    assert f'{compare}.runs' in graph[f'{compare}.study']
    assert f'{compare}.errors' in graph[f'{compare}.grid']
    assert f'{compare}.diagnostics' in graph[f'{compare}.study']  # inside a function
    assert f'{compare}.cli' in graph[compare]


def test_no_import_cycles(graph):
    edges = {n: set(inside) for n, inside in graph.items()}
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
