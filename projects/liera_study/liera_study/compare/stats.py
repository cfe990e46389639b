"""Statistics of a comparison: per method, mean and sample standard deviation over seeds; paired
differences between methods with 95 % intervals.

Paired: the same seed gives every method the same neck and head init and the same data order
(adapter factors draw from their own generator), so ``d_s = A_s − B_s`` removes what the seeds
share. Intervals over the n seeds present in both: the paired t interval
``mean(d) ± t(0.975, n − 1) · sd(d) / √n``, and a percentile bootstrap over seeds
(``BOOTSTRAP`` resamples of the seeds with replacement, from a fixed generator, so the same
results give the same interval).
"""
import math

import numpy as np

from .metrics import of_results

BOOTSTRAP = 10000


def _stats(values):
    """(mean, sample std or None) of the non-None values, or (None, None)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean)**2 for v in values) / (len(values) - 1))


def final_runs(results, name):
    """The method's final runs (its chosen setting, tested), in seed order."""
    return sorted((r for r in results['runs'] if r['method'] == name and r.get('final')),
                  key=lambda r: r['seed'])


def summarise(results, methods):
    """Per method (in the given order): counts, mean/std of every figure (the results' metrics
    first, in order: ``per_seed`` has them as keys), failures."""
    keys = tuple(m.key for m in of_results(results))
    rows = []
    for name, config in methods:
        runs = final_runs(results, name)
        ok = [r for r in runs if r['status'] == 'ok']
        first = (ok or runs or [{}])[0]
        row = dict(
            method=name,
            config=config,
            setting=first.get('setting_label', 'default'),
            runs=len(runs),
            ok=len(ok),
            seeds=[r['seed'] for r in ok],
            per_seed={m: {
                r['seed']: r.get(m)
                for r in ok
            }
                      for m in keys},
            failed=[(r['seed'], r.get('error', '')) for r in runs if r['status'] == 'failed'],
            pending=[r['seed'] for r in runs if r['status'] not in ('ok', 'failed')],
            trainable_params=first.get('trainable_params'),
            backbone_trainable_params=first.get('backbone_trainable_params'),
            params_by_part=first.get('params_by_part'),
            memory_kind=ok[0].get('memory_kind') if ok else None,
            threads=sorted({r.get('threads', 'not recorded')
                            for r in ok}, key=str),
            jobs=max((r.get('jobs', 1) for r in ok), default=1))
        for key in keys + ('sec_per_iter', 'peak_memory_mib'):
            row[key] = _stats([r.get(key) for r in ok])
        stages = {}
        for r in ok:
            for stage, v in (r.get('weight_change') or {}).items():
                stages.setdefault(stage, []).append(v)
        row['weight_change'] = {s: _stats(v)[0] for s, v in stages.items()}
        rows.append(row)
    return rows


def t_interval(diffs, level=0.95):
    """(low, high) paired t interval of the mean of ``diffs``; None for fewer than 2."""
    n = len(diffs)
    if n < 2:
        return None
    from scipy import stats
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean)**2 for d in diffs) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(diffs, level=0.95, resamples=BOOTSTRAP, seed=0):
    """(low, high) percentile bootstrap interval of the mean over ``diffs``; None for < 2."""
    if len(diffs) < 2:
        return None
    d = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


def paired_differences(rows, pairs):
    """[{pair, a, b, metric, seeds, diffs, mean, t, bootstrap}] for each (a, b) and metric
    (the rows' metrics: their ``per_seed`` keys)."""
    by_name = {r['method']: r for r in rows}
    out = []
    for a, b in pairs:
        for metric in by_name[a]['per_seed']:
            pa, pb = by_name[a]['per_seed'][metric], by_name[b]['per_seed'][metric]
            seeds = sorted(s for s in set(pa) & set(pb) if None not in (pa[s], pb[s]))
            diffs = [pa[s] - pb[s] for s in seeds]
            out.append(
                dict(
                    pair=f'{a} − {b}',
                    a=a,
                    b=b,
                    metric=metric,
                    seeds=seeds,
                    diffs=diffs,
                    mean=sum(diffs) / len(diffs) if diffs else None,
                    t=t_interval(diffs),
                    bootstrap=bootstrap_interval(diffs)))
    return out
