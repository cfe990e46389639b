"""A comparison's outputs: results.json / .csv, table.md (final runs), grid.md (screening on
val), pairs.md (paired differences), diagnostics.md (weight change, parameters per part),
plot.png, curves.png and grid.png."""
import csv
import io
import json
import os
import os.path as osp

from mmliera.checkpoint.atomic import atomic_path, write_text_atomic
from .grid import value_order
from .metrics import DETECTION, by_key, of_results
from .stats import paired_differences, summarise


def _metrics(rows):
    """The metrics of summary rows (their ``per_seed`` keys, in order)."""
    return by_key(list(rows[0]['per_seed'])) if rows else DETECTION


def _fmt(value, metric):
    return '-' if value is None else format(value, metric.fmt)


def _pm(stat, fmt):
    mean, std = stat
    if mean is None:
        return '-'
    return format(mean, fmt) + (f' ± {format(std, fmt)}' if std is not None else '')


def _cell(text):
    return str(text).replace('|', '\\|')


def markdown_table(rows):
    metrics = _metrics(rows)
    head = ('| Method | Setting | Trainable params (backbone) | ' +
            ''.join(f'{m.label} | ' for m in metrics) + 's / iter | Peak memory (MiB) | Seeds |\n'
            '|---|---|---:|' + '---:|' * len(metrics) + '---:|---:|---|')
    lines = [head]
    for r in rows:
        params = '-' if r['trainable_params'] is None else \
            f'{r["trainable_params"]:,} ({r["backbone_trainable_params"]:,})'
        seeds = ', '.join(map(str, r['seeds'])) or 'none'
        if r.get('pending'):
            seeds += '; not yet tested: ' + ', '.join(map(str, r['pending']))
        if r['failed']:
            seeds += '; **failed**: ' + '; '.join(_cell(f'seed {s}: {e}') for s, e in r['failed'])
        lines.append(f'| {r["method"]} | {_cell(r["setting"])} | {params} | ' +
                     ''.join(f'{_pm(r[m.key], m.fmt)} | ' for m in metrics) +
                     f'{_pm(r["sec_per_iter"], ".3f")} | {_pm(r["peak_memory_mib"], ".0f")} | '
                     f'{seeds} |')
    kinds = sorted({r['memory_kind'] for r in rows if r['memory_kind']})
    notes = [
        '', 'Test split; mean ± sample standard deviation over the seeds that ran; setting: the '
        'one chosen on the val split (grid.md); trainable parameters: the whole model (its '
        'backbone in brackets).'
    ]
    if kinds:
        notes.append(f'Peak memory: {", ".join(kinds)}.')
    threads = {r['method']: r.get('threads') or [] for r in rows}
    found = sorted({t for ts in threads.values() for t in ts}, key=str)
    if len(found) == 1:
        notes.append(f'CPU threads per run: {found[0]}.')
    elif found:  # (the thread count moves the last bits of every sum: runs differ)
        notes.append('CPU threads per run differ: ' +
                     '; '.join(f'{m}: {", ".join(map(str, ts))}'
                               for m, ts in threads.items() if ts) + '.')
    jobs = max((r.get('jobs', 1) for r in rows), default=1)
    if jobs > 1:
        notes.append(f's / iter: runs made up to {jobs} at a time (--jobs), each slower than '
                     'it would be alone.')
    return '\n'.join(lines + notes) + '\n'


def _setting_order(run):
    """Sort key of a screening run: its setting's values in ascending order (numbers before
    other values, ``grid.value_order``), then its seed; a grid extended later (``0.01`` added
    below ``0.03, 0.1``) still reads low to high."""
    return [value_order(v) for _, v in run.get('setting') or ()], run.get('seed', 0)


def grid_table(results, methods, chosen, edges=None):
    """Screening: every validation figure of every setting tried, the chosen one marked (and
    ``edges[method]``, a choice at the grid's edge, said beside it)."""
    edges = edges or {}
    metrics = of_results(results)
    lines = [
        '| Method | Setting | Seed | ' + ''.join(f'val {m.label} | ' for m in metrics) + ' |',
        '|---|---|---:|' + '---:|' * len(metrics) + '---|'
    ]
    for name, _ in methods:
        runs = sorted((r for r in results['runs'] if r['method'] == name and r.get('screen')),
                      key=_setting_order)
        for r in runs:
            val = r.get('val') or {}
            mark = '**chosen**' if chosen.get(name) == r['setting_label'] else ''
            if mark and edges.get(name):
                mark += f' ({_cell(edges[name])}: the best may lie beyond it)'
            if r['status'] == 'failed':
                mark = 'failed: ' + _cell(r.get('error', ''))
            elif r['status'] in ('trained', 'ok') and all(val.get(m.key) is None for m in metrics):
                mark = _cell(r.get('val_note') or 'trained, no val figure (see its log)')
            lines.append(f'| {name} | {_cell(r["setting_label"])} | {r["seed"]} | ' +
                         ''.join(f'{_fmt(val.get(m.key), m)} | ' for m in metrics) + f'{mark} |')
    lines += [
        '', 'Validation split, the last validation of each training run; the rule, fixed '
        f'in advance: best val {metrics[0].label}, ties to the lower value.'
    ]
    return '\n'.join(lines) + '\n'


def _interval(iv, fmt='+.3f'):
    return '-' if iv is None else f'[{iv[0]:{fmt}}, {iv[1]:{fmt}}]'


def pairs_table(diffs):
    lines = [
        '| Difference | Metric | n | Mean | 95 % t interval | 95 % bootstrap (seeds) | Per seed |',
        '|---|---|---:|---:|---|---|---|'
    ]
    for d in diffs:
        m = by_key([d['metric']])[0]
        sign = '+' + m.fmt
        per = ', '.join(f'{s}: {v:{sign}}' for s, v in zip(d['seeds'], d['diffs'])) or '-'
        mean = '-' if d['mean'] is None else f'{d["mean"]:{sign}}'
        lines.append(f'| {d["pair"]} | {m.label} | {len(d["seeds"])} | {mean} | '
                     f'{_interval(d["t"], sign)} | {_interval(d["bootstrap"], sign)} | {per} |')
    lines += [
        '', 'Test split, paired by seed (same seed: same neck / head init and data order). '
        'An interval that excludes 0 is a difference these seeds resolve.'
    ]
    return '\n'.join(lines) + '\n'


def diagnostics_table(rows):
    stages = []
    for r in rows:
        stages += [s for s in r['weight_change'] if s not in stages]
    parts = []
    for r in rows:
        parts += [p for p in (r['params_by_part'] or {}) if p not in parts]
    head = ['Method'] + [f'ΔW {s}' for s in stages] + [f'trainable {p}' for p in parts]
    lines = ['| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * (len(head) - 1)]
    for r in rows:
        cells = [r['method']]
        cells += [
            '-' if r['weight_change'].get(s) is None else f'{r["weight_change"][s]:.2e}'
            for s in stages
        ]
        cells += [f'{(r["params_by_part"] or {}).get(p, 0):,}' for p in parts]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += [
        '', 'ΔW: relative change ‖W\' − W₀‖ / ‖W₀‖ of the backbone per stage (effective '
        'weights, mean over the final runs); trainable parameters per top-level part.'
    ]
    return '\n'.join(lines) + '\n'


CSV_KEYS = [
    'trainable_params', 'backbone_trainable_params', 'sec_per_iter', 'peak_memory_mib',
    'memory_kind', 'device', 'train_s', 'test_s', 'start_sha256', 'config', 'fingerprint', 'commit',
    'error'
]


def write_csv(results, path):
    """One row per run: its val and test figures (``val_<metric>``, ``<metric>``), the rest."""
    keys = [m.key for m in of_results(results)]
    head = ['method', 'setting_label', 'seed', 'screen', 'final', 'status']
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf,
        head + [f'val_{k}' for k in keys] + keys + CSV_KEYS,
        extrasaction='ignore',
        lineterminator='\n')
    writer.writeheader()
    for r in results['runs']:
        val = r.get('val') or {}
        writer.writerow(dict(r, **{f'val_{k}': val.get(k) for k in keys}))
    write_text_atomic(path, buf.getvalue())


def _save(fig, path):
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png')
    plt.close(fig)


def plot(rows, path, diffs=(), references=()):
    """Every final run as one marker (per method and seed) with the method's mean, reference
    lines, the paired differences, and mAP against trainable backbone parameters (exact counts:
    equal counts share an x). Returns the figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [r for r in rows if r['seeds']]
    metrics = _metrics(rows)
    main = metrics[0]
    main_diffs = [d for d in diffs if d['metric'] == main.key]
    # one panel per metric (at most two), the paired differences, the parameter axis
    if len(metrics) > 1:
        fig, axes = plt.subplots(2, 2, figsize=(13, 9))
        (ax_b, ax_s), (ax_d, ax_p) = axes
        panels = ((ax_b, metrics[0]), (ax_s, metrics[1]))
    else:
        fig, (ax_b, ax_d, ax_p) = plt.subplots(1, 3, figsize=(17, 5.5))
        panels = ((ax_b, main), )
    colours = {r['method']: f'C{i % 10}' for i, r in enumerate(shown)}
    for ax, metric in panels:
        key = metric.key
        for i, r in enumerate(shown):
            ys = [r['per_seed'][key][s] for s in r['seeds']]
            xs = i + np.linspace(-0.18, 0.18, len(ys)) if len(ys) > 1 else [i]
            ax.scatter(
                xs, ys, s=22, color=colours[r['method']], alpha=0.8, zorder=3, label=r['method'])
            ax.hlines(r[key][0], i - 0.3, i + 0.3, color='k', lw=1.5, zorder=4)
        for ref, style in zip(references, ('--', ':', '-.')):
            row = next((r for r in shown if r['method'] == ref), None)
            if row is not None:
                ax.axhline(row[key][0], color='grey', ls=style, lw=1, label=f'{ref} (mean)')
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels([f'{r["method"]}\n{r["setting"]}' for r in shown],
                           rotation=45,
                           ha='right',
                           fontsize=7)
        ax.set_ylabel(f'test {metric.label} (dot: one seed, bar: mean)')
        ax.grid(True, axis='y', alpha=0.3)
    for i, d in enumerate(main_diffs):
        if not d['diffs']:
            continue
        xs = i + np.linspace(-0.15, 0.15, len(d['diffs'])) if len(d['diffs']) > 1 else [i]
        ax_d.scatter(xs, d['diffs'], s=18, color='C0', alpha=0.7, zorder=3)
        if d['mean'] is not None:
            lo, hi = d['t'] if d['t'] else (d['mean'], d['mean'])
            ax_d.errorbar(
                i + 0.3,
                d['mean'],
                yerr=[[d['mean'] - lo], [hi - d['mean']]],
                fmt='D',
                color='k',
                capsize=3,
                markersize=5,
                zorder=4)
    ax_d.axhline(0, color='grey', lw=1)
    ax_d.set_xticks(range(len(main_diffs)))
    ax_d.set_xticklabels([d['pair'] for d in main_diffs], rotation=45, ha='right', fontsize=7)
    ax_d.set_ylabel(f'paired difference, test {main.label}\n'
                    '(dot: one seed; ◆: mean, 95 % t interval)')
    ax_d.grid(True, axis='y', alpha=0.3)
    counts = [r['backbone_trainable_params'] or 0 for r in shown]
    linthresh = max(1, min([c for c in counts if c > 0], default=1)) / 2
    for r, c in zip(shown, counts):
        ys = [r['per_seed'][main.key][s] for s in r['seeds']]
        ax_p.scatter(
            [c] * len(ys), ys, s=18, color=colours[r['method']], alpha=0.7, label=r['method'])
    ax_p.set_xscale('symlog', linthresh=linthresh)
    ax_p.set_xlabel('trainable backbone parameters (exact count, symlog)')
    ax_p.set_ylabel(f'test {main.label} (one dot per seed)')
    ax_p.grid(True, alpha=0.3)
    handles, labels = ax_b.get_legend_handles_labels()
    fig.legend(handles, labels, loc='center right', frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    _save(fig, path)
    return fig


def plot_curves(results, rows, path):
    """The first metric on val against iteration for each method's final runs (thin: one seed,
    thick: mean): is the schedule long enough?"""
    main = of_results(results)[0]
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, r in enumerate(x for x in rows if x['seeds']):
        runs = [
            x for x in results['runs']
            if x['method'] == r['method'] and x.get('final') and x.get('val_curve')
        ]
        curves = [[(p[0], p[1]) for p in x['val_curve'] if p[0] is not None] for x in runs]
        for c in curves:
            ax.plot(*zip(*c), color=f'C{i % 10}', lw=0.6, alpha=0.4)
        steps = sorted({s for c in curves for s, _ in c})
        mean = [sum(dict(c).get(s, 0) for c in curves) / len(curves) for s in steps]
        if steps:
            ax.plot(steps, mean, color=f'C{i % 10}', lw=2, marker='o', ms=3, label=r['method'])
    ax.set_xlabel('iteration')
    ax.set_ylabel(f'val {main.label} (thin: one seed, thick: mean)')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc='center left', bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_grid(results, methods, path):
    """Screening: the first metric on val against the (first numeric) grid value, one line per
    method."""
    main = of_results(results)[0]
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    key = None
    for i, (name, _) in enumerate(methods):
        pts = []
        for r in results['runs']:
            if r['method'] == name and r.get('screen') and (r.get('val') or {}).get(main.key) \
                    is not None and r.get('setting'):
                k, v = r['setting'][0]
                if isinstance(v, (int, float)):
                    key = k
                    pts.append((v, r['val'][main.key]))
        if pts:
            ax.plot(*zip(*sorted(pts)), marker='o', color=f'C{i % 10}', label=name)
    if key is None:
        plt.close(fig)
        return None
    ax.set_xscale('log')
    ax.set_xlabel(key.rsplit('.', 1)[-1] + ' (log)')
    ax.set_ylabel(f'val {main.label} (screening seed)')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc='center left', bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    _save(fig, path)
    return fig


def write_outputs(results,
                  methods,
                  out_dir,
                  pairs=(),
                  references=(),
                  chosen=None,
                  edges=None,
                  plots=True):
    """Every output file (the PNG plots only when ``plots``); returns the summary rows."""
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(osp.join(out_dir, 'results.json'), json.dumps(results, indent=1) + '\n')
    write_csv(results, osp.join(out_dir, 'results.csv'))
    rows = summarise(results, methods)
    chosen = chosen or {}
    for row in rows:  # chosen on val, no final run made yet: the table names the choice
        if not row['runs'] and row['method'] in chosen:
            row['setting'] = chosen[row['method']]
    write_text_atomic(osp.join(out_dir, 'table.md'), markdown_table(rows))
    if any(r.get('screen') for r in results['runs']):
        write_text_atomic(osp.join(out_dir, 'grid.md'), grid_table(results, methods, chosen, edges))
        if plots:
            plot_grid(results, methods, osp.join(out_dir, 'grid.png'))
    pairs = [p for p in pairs if all(n in {r['method'] for r in rows} for n in p)]
    diffs = paired_differences(rows, pairs)
    if diffs:
        write_text_atomic(osp.join(out_dir, 'pairs.md'), pairs_table(diffs))
    if any(r['weight_change'] or r['params_by_part'] for r in rows):
        write_text_atomic(osp.join(out_dir, 'diagnostics.md'), diagnostics_table(rows))
    if plots and any(r['seeds'] for r in rows):
        plot(rows, osp.join(out_dir, 'plot.png'), diffs, references)
        plot_curves(results, rows, osp.join(out_dir, 'curves.png'))
    return rows
