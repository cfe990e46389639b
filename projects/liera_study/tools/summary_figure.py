"""One figure across the studies: paired LieRA − LoRA per study and rank, from the records.

    python projects/liera_study/tools/summary_figure.py [--out projects/liera_study/results]

Reads the committed ``results.json`` of the backbone transfer study (rank 8, 5 seeds), its rank
study (ranks 2 and 32, 3 seeds), the whole-detector study, the classification study and the
capacity study's sensitivity check (its two teachers); for each, the paired test difference
LieRA − LoRA (same seeds) with its 95 % t interval, in points (mAP x 100, top-1 %). Writes
``summary.png`` and ``summary.md`` (the same numbers as a table).
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
sys.path.insert(0, ROOT)

from projects.liera_study.liera_study.compare import stats  # noqa: E402

RESULTS = osp.join(ROOT, 'projects', 'liera_study', 'results')
# (label, results folder, LieRA arm, LoRA arm, metrics)
ROWS = [
    ('backbone transfer, r8', 'transfer_study', 'liera_taylor', 'lora', ['bbox_mAP', 'segm_mAP']),
    ('backbone transfer, r2', 'transfer_study/rank_960', 'liera_taylor_r2', 'lora_r2',
     ['bbox_mAP', 'segm_mAP']),
    ('backbone transfer, r32', 'transfer_study/rank_960', 'liera_taylor_r32', 'lora_r32',
     ['bbox_mAP', 'segm_mAP']),
    ('whole detector, r8 (320 it.)', 'whole_detector_study', 'whole_liera', 'whole_lora',
     ['bbox_mAP', 'segm_mAP']),
    ('classification, r2', 'transfer_cls_study', 'liera_r2', 'lora_r2', ['top1']),
    ('classification, r8', 'transfer_cls_study', 'liera_r8', 'lora_r8', ['top1']),
    ('capacity, multiplicative teacher, r2', 'capacity_study/teacher_multiplicative', 'liera_r2',
     'lora_r2', ['top1']),
    ('capacity, additive teacher, r2', 'capacity_study/teacher_additive', 'liera_r2', 'lora_r2',
     ['top1']),
]
SCALE = dict(bbox_mAP=100, segm_mAP=100, top1=1)  # points: mAP x 100, top-1 in %
NAMES = dict(bbox_mAP='bbox mAP', segm_mAP='segm mAP', top1='top-1')


def differences():
    """[(label, metric, seeds, mean, (low, high))] in points, one per row and metric."""
    out = []
    for label, folder, a, b, metrics in ROWS:
        path = osp.join(RESULTS, folder, 'results.json')
        with open(path) as f:
            results = json.load(f)
        rows = stats.summarise(results, [(a, None), (b, None)])
        for d in stats.paired_differences(rows, [(a, b)]):
            if d['metric'] not in metrics:
                continue
            if d['mean'] is None or d['t'] is None:
                raise SystemExit(f'error: {path}: no paired final runs of {a} and {b}')
            k = SCALE[d['metric']]
            out.append((label, d['metric'], len(d['seeds']), d['mean'] * k, (d['t'][0] * k,
                                                                             d['t'][1] * k)))
    return out


def write_table(diffs, path):
    lines = [
        '# LieRA − LoRA across the studies (test, paired seeds, 95 % t interval, points)', '',
        'Written by projects/liera_study/tools/summary_figure.py from the results.json files.', '',
        '| study | metric | seeds | LieRA − LoRA | 95 % t |', '|---|---|---:|---:|---|'
    ]
    for label, metric, n, mean, (lo, hi) in diffs:
        lines.append(f'| {label} | {NAMES[metric]} | {n} | {mean:+.1f} | [{lo:+.1f}, {hi:+.1f}] |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def plot(diffs, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colours = dict(bbox_mAP='tab:blue', segm_mAP='tab:orange', top1='tab:green')
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(diffs) + 1.2))
    ys = list(range(len(diffs)))[::-1]
    for y, (label, metric, n, mean, (lo, hi)) in zip(ys, diffs):
        ax.errorbar(
            mean, y, xerr=[[mean - lo], [hi - mean]], fmt='o', capsize=3, color=colours[metric])
    ax.axvline(0, color='grey', lw=1)
    ax.set_yticks(ys)
    ax.set_yticklabels([f'{label}: {NAMES[m]} ({n} seeds)' for label, m, n, _, _ in diffs],
                       fontsize=8)
    ax.set_xlabel('LieRA − LoRA on test (mAP x 100, top-1 %), 95 % paired t')
    ax.set_title('Where LieRA beats LoRA at equal parameters (right of 0)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=RESULTS, help='folder for summary.png / summary.md')
    args = parser.parse_args(argv)
    diffs = differences()
    write_table(diffs, osp.join(args.out, 'summary.md'))
    plot(diffs, osp.join(args.out, 'summary.png'))
    for label, metric, n, mean, (lo, hi) in diffs:
        print(f'{label:30s} {NAMES[metric]:9s} {n} seeds  {mean:+5.1f}  [{lo:+.1f}, {hi:+.1f}]')


if __name__ == '__main__':
    main()
