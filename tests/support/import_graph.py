"""The import graph of a package in the checkout, read from its source (AST, no import): every
``import`` / ``from ... import`` of each module, those inside functions included."""
import ast
import os

from helpers import ROOT


def modules(package):
    """{module name: path} of every module of ``package`` (a dotted name under the checkout)."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, *package.split('.'))):
        for f in files:
            if f.endswith('.py'):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == '__init__':
                    rel = rel[:-1]
                found['.'.join(rel)] = os.path.join(folder, f)
    return found


def imports_of(name, path, known):
    """(the modules of ``known`` that ``name`` at ``path`` imports, the top-level names of every
    other absolute import it makes)."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                base = package.split('.')
                module = '.'.join(base[:len(base) - node.level + 1] + ([module] if module else []))
            targets += [
                f'{module}.{a.name}' if f'{module}.{a.name}' in known else module
                for a in node.names
            ]
    return {t for t in targets if t in known}, {t.split('.')[0] for t in targets if t not in known}


def graph(package):
    """{module: (modules of ``package`` it imports, top-level names of its other imports)}."""
    known = modules(package)
    return {n: imports_of(n, p, known) for n, p in known.items()}


def cycles(edges):
    """Every cycle found by a depth-first walk of ``edges`` ({module: modules it imports})."""
    found, state = [], {}

    def visit(n, stack):
        state[n] = 'open'
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 'open':
                found.append(' -> '.join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[n] = 'done'

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    return found
