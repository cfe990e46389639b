"""A comparison's outputs: results.json, results.csv, table.md and plot.png."""
import csv
import io
import json
import os
import os.path as osp

from ...checkpoint.atomic import atomic_path, write_text_atomic
from .runs import METRICS
from .stats import summarise


def _pm(stat, fmt):
    mean, std = stat
    if mean is None:
        return '-'
    return format(mean, fmt) + (f' ± {format(std, fmt)}' if std is not None else '')


def markdown_table(rows):
    head = ('| Method | Trainable params (backbone) | bbox mAP | segm mAP | s / iter '
            '| Peak memory (MiB) | Seeds |\n|---|---:|---:|---:|---:|---:|---|')
    lines = [head]
    for r in rows:
        params = '-' if r['trainable_params'] is None else \
            f'{r["trainable_params"]:,} ({r["backbone_trainable_params"]:,})'
        seeds = ', '.join(map(str, r['seeds'])) or 'none'
        if r['failed']:
            seeds += '; **failed**: ' + '; '.join(f'seed {s}: {e}'.replace('|', '\\|')
                                                  for s, e in r['failed'])
        lines.append(f'| {r["method"]} | {params} | {_pm(r["bbox_mAP"], ".3f")} | '
                     f'{_pm(r["segm_mAP"], ".3f")} | {_pm(r["sec_per_iter"], ".3f")} | '
                     f'{_pm(r["peak_memory_mib"], ".0f")} | {seeds} |')
    kinds = sorted({r['memory_kind'] for r in rows if r['memory_kind']})
    notes = [
        '', 'mean ± sample standard deviation over the seeds that ran; trainable '
        'parameters: the whole detector (its backbone in brackets).'
    ]
    if kinds:
        notes.append(f'Peak memory: {", ".join(kinds)}.')
    return '\n'.join(lines + notes) + '\n'


def write_csv(results, path):
    keys = [
        'method', 'seed', 'status', 'bbox_mAP', 'segm_mAP', 'trainable_params',
        'backbone_trainable_params', 'sec_per_iter', 'peak_memory_mib', 'memory_kind', 'wall_s',
        'config', 'fingerprint', 'commit', 'error'
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for r in results['runs']:
        writer.writerow(r)
    write_text_atomic(path, buf.getvalue())


def plot(rows, path):
    """mAP (bbox, segm) against the backbone's trainable parameters; returns the figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    markers = 'osD^vP*Xhp<>'
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    xs = [r['backbone_trainable_params'] or 0 for r in rows]
    linthresh = max(1, min([x for x in xs if x > 0], default=1)) / 2
    for ax, key, label in zip(axes, METRICS, ('bbox mAP', 'segm mAP')):
        for i, r in enumerate(rows):
            mean, std = r[key]
            if mean is None:
                continue
            # methods with about the same count (within 30 %) are drawn side by side
            same = [
                j for j, x in enumerate(xs)
                if (x == xs[i] == 0) or (x and xs[i] and max(x, xs[i]) <= 1.3 * min(x, xs[i]))
            ]
            step = same.index(i) - (len(same) - 1) / 2
            x = xs[i] * 1.12**step if xs[i] else step * linthresh * 0.15
            ax.errorbar(
                x,
                mean,
                yerr=std or 0,
                fmt=markers[i % len(markers)],
                color=f'C{i % 10}',
                capsize=3,
                markersize=7,
                label=r['method'])
        ax.set_xscale('symlog', linthresh=linthresh)
        ax.set_xlabel('trainable backbone parameters (symlog)')
        ax.set_ylabel(f'{label} (mean ± std over seeds)')
        ax.grid(True, alpha=0.3)
    handles = [
        Line2D([], [],
               marker=markers[i % len(markers)],
               color=f'C{i % 10}',
               linestyle='',
               label=r['method']) for i, r in enumerate(rows) if r['bbox_mAP'][0] is not None
    ]
    fig.legend(handles=handles, loc='center right', frameon=False)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png')
    plt.close(fig)
    return fig


def write_outputs(results, methods, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(osp.join(out_dir, 'results.json'), json.dumps(results, indent=1) + '\n')
    write_csv(results, osp.join(out_dir, 'results.csv'))
    rows = summarise(results, methods)
    write_text_atomic(osp.join(out_dir, 'table.md'), markdown_table(rows))
    if any(r['bbox_mAP'][0] is not None for r in rows):
        plot(rows, osp.join(out_dir, 'plot.png'))
    return rows


# ---------------------------------------------------------------------------------------------
# the command
