"""Statistics of a comparison: per method, mean and sample standard deviation over seeds."""
import math

from .runs import METRICS


def _stats(values):
    """(mean, sample std or None) of the non-None values, or (None, None)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean)**2 for v in values) / (len(values) - 1))


def summarise(results, methods):
    """Per method (in the given order): counts, mean/std of every figure, failures."""
    rows = []
    for name, config in methods:
        runs = [r for r in results['runs'] if r['method'] == name]
        ok = [r for r in runs if r['status'] == 'ok']
        row = dict(
            method=name,
            config=config,
            runs=len(runs),
            ok=len(ok),
            seeds=sorted(r['seed'] for r in ok),
            failed=[(r['seed'], r.get('error', '')) for r in runs if r['status'] != 'ok'],
            trainable_params=runs[0].get('trainable_params') if runs else None,
            backbone_trainable_params=runs[0].get('backbone_trainable_params') if runs else None,
            memory_kind=ok[0].get('memory_kind') if ok else None)
        for key in METRICS + ('sec_per_iter', 'peak_memory_mib'):
            row[key] = _stats([r.get(key) for r in ok])
        rows.append(row)
    return rows
