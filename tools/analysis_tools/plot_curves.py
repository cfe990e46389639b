"""Plot a run's training curves: loss terms and bbox / segm mAP against the iteration.

    python tools/analysis_tools/plot_curves.py WORK_DIR_OR_SCALARS_JSON [--out curves.png]
                                [--losses loss loss_cls ...] [--metrics coco/bbox_mAP ...]

Reads mmengine's ``vis_data/scalars.json`` (one JSON object per line: training entries with
``loss*`` and ``iter``, evaluation entries with ``coco/...`` metrics); given a work dir, the
newest ``<timestamp>/vis_data/scalars.json`` in it. An evaluation is drawn at the iteration of
the training entry before it (mmengine logs it with the epoch as its step). Headless
(matplotlib's Agg backend). Default: every ``loss*`` term and every ``*bbox_mAP`` /
``*segm_mAP`` metric; ``--out`` defaults to ``curves.png`` beside the scalars file's run.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import sys

DEFAULT_METRICS = re.compile(r'(^|/)((bbox|segm)_mAP|top\d+)$')


class CurvesError(ValueError):
    """Nothing to plot where the command line points."""


def find_scalars(path):
    """The scalars.json file of ``path`` (the file itself, or the newest in a work dir)."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise CurvesError(f'{path} is neither a work dir nor a scalars.json file')
    found = sorted(
        glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')) +
        glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
    if not found:
        raise CurvesError(f'{path} has no <timestamp>/vis_data/scalars.json: give the work dir '
                          'of a run of tools/train.py (or the scalars.json file itself)')
    return found[-1]


def load_scalars(path):
    """(train, evals): lists of dicts with an ``x`` (iteration) key added."""
    train, evals, last_iter = [], [], 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise CurvesError(f'{path} line {n} is not JSON ({e})') from None
            if any(k.startswith('loss') for k in entry):
                last_iter = entry.get('iter', entry.get('step', last_iter))
                train.append(dict(entry, x=last_iter))
            elif any('/' in k for k in entry):
                evals.append(dict(entry, x=last_iter))
    return train, evals


def plot(train, evals, losses, metrics, out, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for key in losses:
        pts = [(e['x'], e[key]) for e in train if key in e]
        ax_loss.plot(*zip(*pts), label=key, lw=2 if key == 'loss' else 1.2)
    ax_loss.set(xlabel='iteration', ylabel='loss', title='training losses')
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    for key in metrics:
        pts = [(e['x'], e[key]) for e in evals if key in e]
        ax_map.plot(*zip(*pts), 'o-', label=key)
        ax_map.annotate(
            f'{pts[-1][1]:.3f}', pts[-1], textcoords='offset points', xytext=(-10, 6), fontsize=8)
    ax_map.set(xlabel='iteration', ylabel='mAP', title='validation mAP', ylim=(0, 1))
    if train:
        ax_map.set_xlim(0, max(e['x'] for e in train) * 1.05)
    ax_map.legend(fontsize=8, loc='lower right')
    ax_map.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('path', help='work dir of a run, or its vis_data/scalars.json')
    parser.add_argument('--out', help='PNG to write (default: curves.png in the run folder)')
    parser.add_argument('--losses', nargs='+', help='loss keys (default: every loss*)')
    parser.add_argument(
        '--metrics', nargs='+', help='metric keys (default: *bbox_mAP, '
        '*segm_mAP)')
    args = parser.parse_args(argv)

    scalars = find_scalars(args.path)
    train, evals = load_scalars(scalars)
    train_keys = sorted({k for e in train for k in e})
    eval_keys = sorted({k for e in evals for k in e})
    losses = args.losses or [k for k in train_keys if k.startswith('loss')]
    metrics = args.metrics or [k for k in eval_keys if DEFAULT_METRICS.search(k)]
    unknown = [k
               for k in losses if k not in train_keys] + [k for k in metrics if k not in eval_keys]
    if unknown:
        raise CurvesError(f'{scalars} has no {unknown}; it has losses '
                          f'{[k for k in train_keys if k.startswith("loss")]} and metrics '
                          f'{[k for k in eval_keys if "/" in k]}')
    if not losses and not metrics:
        raise CurvesError(f'{scalars} has neither loss* entries nor evaluation metrics: is it '
                          "mmengine's vis_data/scalars.json of a training run?")
    out = args.out or osp.join(
        args.path if osp.isdir(args.path) else osp.dirname(scalars), 'curves.png')
    plot(train, evals, losses, metrics, out, title=scalars)
    last = ', '.join(f'{k} {[e[k] for e in evals if k in e][-1]:.3f}' for k in metrics)
    print(f'{scalars}: {len(train)} training entries (iterations '
          f'{train[0]["x"] if train else "-"}..{train[-1]["x"] if train else "-"}), '
          f'{len(evals)} evaluations{"; last: " + last if last else ""}\nwrote {out}')


if __name__ == '__main__':
    # the error convention of mmliera's tools (mmliera.cli.errors), without importing mmliera
    debug = '--debug' in sys.argv or os.environ.get('MMLIERA_DEBUG', '') not in ('', '0')
    try:
        main([a for a in sys.argv[1:] if a != '--debug'])
    except CurvesError as e:
        if debug:
            raise
        sys.exit(f'error: {" ".join(str(e).split())}')
