"""Per-method grids over config keys, and the selection rule (chosen on the validation split).

``--grid [METHOD[,METHOD...]:]KEY=V1,V2,...`` (repeatable). Without methods the grid applies to
every method; a method's own entry for a KEY replaces the general one. Several KEYs make a
product grid. ``KEY`` is a dotted config key (``optim_wrapper.paramwise_cfg.custom_keys.
backbone.lr_mult``) or a name that ends exactly one dotted key of the config (``lr_mult``).
Values are Python literals (``0.3``, ``True``, ``'a'``); anything else is a string.

Selection, fixed in advance: the setting with the best validation bbox mAP (``coco/bbox_mAP`` of
the training run's last validation); ties go to the lower value (the grid's values compared in
order, as numbers where they are numbers). A choice at the lowest or highest value of a numeric
key (of 3 or more values) is flagged: the best may lie beyond the grid.
"""
import ast
import itertools
from typing import Dict, List, Tuple

from .errors import ComparisonError


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid(specs, method_names) -> Dict[str, Dict[str, list]]:
    """{method: {KEY: [values]}} from ``--grid`` items (KEYs not yet resolved)."""
    general, own = {}, {}
    for spec in specs or ():
        head, sep, values = spec.partition('=')
        methods, colon, key = head.rpartition(':')
        if not sep or not key or not values.strip(','):
            raise ComparisonError(f'--grid {spec!r}: write [METHOD[,METHOD]:]KEY=V1,V2,...')
        vals = [_value(v.strip()) for v in values.split(',') if v.strip()]
        if len(set(map(repr, vals))) != len(vals):
            raise ComparisonError(f'--grid {spec!r}: a value is given twice')
        if colon:
            for m in methods.split(','):
                if m not in method_names:
                    raise ComparisonError(f'--grid {spec!r}: no method named {m!r} (methods: '
                                          f'{", ".join(method_names)})')
                own.setdefault(m, {})[key] = vals
        else:
            general[key] = vals
    return {m: dict(general, **own.get(m, {})) for m in method_names}


def _dotted_keys(node, prefix=''):
    if isinstance(node, dict):
        for k, v in node.items():
            path = f'{prefix}.{k}' if prefix else str(k)
            yield path
            yield from _dotted_keys(v, path)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _dotted_keys(v, f'{prefix}.{i}')


def resolve_key(cfg, key, where) -> str:
    """The full dotted key of ``cfg`` that ``key`` names (itself, or the one key ending in it)."""
    keys = list(_dotted_keys(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg))
    if key in keys:
        return key
    found = [k for k in keys if k.endswith('.' + key)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ComparisonError(f'--grid {key}: {where} has no config key {key!r} (nor one ending '
                              f'in .{key}); give the dotted key, e.g. '
                              'optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult')
    raise ComparisonError(f'--grid {key}: {where} has several keys ending in .{key}: '
                          f'{", ".join(found[:6])}; give the one you mean in full')


def settings(grid: Dict[str, list]) -> List[Tuple[Tuple[str, object], ...]]:
    """Every setting of a resolved grid, in grid order: [((key, value), ...)]; [()] if empty."""
    keys = list(grid)
    return [tuple(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def slug(setting) -> str:
    """A folder / label name of a setting: ``lr_mult=0.3,...`` (last key part), or 'default'."""
    return ','.join(f'{k.rsplit(".", 1)[-1]}={v}' for k, v in setting) or 'default'


def value_order(value):
    """Sort key of one setting value: numbers ascending, then any other value by its repr."""
    return (0, value, '') if is_number(value) else (1, 0, repr(value))


def select(scores: Dict[tuple, float]):
    """The chosen setting: highest score; ties to the lower values (key by key)."""
    if not scores:
        return None
    best = max(scores.values())
    tied = [s for s, v in scores.items() if v == best]
    return min(tied, key=lambda s: [value_order(v) for _, v in s])


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_edge(chosen, tried) -> List[Tuple[str, object, str]]:
    """``(key, value, 'lowest' | 'highest')`` for each key of the ``chosen`` setting whose value
    is the lowest or highest of the 3 or more numbers tried for it (``tried``: the settings of
    the grid, as :func:`settings` gives them); [] when the choice lies inside the grid."""
    edges = []
    for i, (key, value) in enumerate(chosen):
        values = {s[i][1] for s in tried}
        if len(values) < 3 or not all(map(is_number, values)):
            continue
        if value == max(values):
            edges.append((key, value, 'highest'))
        elif value == min(values):
            edges.append((key, value, 'lowest'))
    return edges


def edge_note(edges) -> str:
    """One line for :func:`at_edge`'s findings ('' if none)."""
    return '; '.join(f"{k.rsplit('.', 1)[-1]}={v} is the grid's {side} value"
                     for k, v, side in edges)
