"""tools/analysis_tools/plot_curves.py on a generated mmengine scalars.json."""
import importlib.util
import json
import os.path as osp

import numpy as np
from helpers import ROOT, tool_in_process
from PIL import Image

LOSSES = ['loss', 'loss_bbox', 'loss_cls', 'loss_mask', 'loss_rpn_bbox', 'loss_rpn_cls']


def _run(*args, fail=False):
    """The tool's output (stdout + stderr) and exit status as from the command line."""
    code, out, err = tool_in_process('plot_curves', *args)
    assert (code == 1 and len(err.strip().splitlines()) == 1) if fail else code == 0, out + err
    return out + err


def _tool():
    spec = importlib.util.spec_from_file_location(
        'plot_curves', osp.join(ROOT, 'tools', 'analysis_tools', 'plot_curves.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_scalars(work, stamp='20261123_120000', iters=100, evals=(50, 100)):
    """What mmengine writes for an iteration-based run logging every 10 iterations."""
    path = work / stamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    lines = []
    for it in range(10, iters + 1, 10):
        terms = {k: 2.0 / (1 + it / 20) * (i + 1) / 6 for i, k in enumerate(LOSSES[1:])}
        lines.append(
            dict(
                lr=1e-3,
                data_time=0.01,
                loss=sum(terms.values()),
                **terms,
                acc=90.0,
                time=0.7,
                iter=it,
                memory=900,
                step=it))
        if it in evals:  # mmengine logs evaluations with the epoch (0) as their step
            lines.append({
                'coco/bbox_mAP': 0.35 * it / 50,
                'coco/bbox_mAP_50': 0.9,
                'coco/segm_mAP': 0.4 * it / 50,
                'data_time': 0.01,
                'time': 0.3,
                'step': 0
            })
    path.write_text(''.join(json.dumps(d) + '\n' for d in lines))
    return path


def test_plots_losses_and_map_of_the_newest_run(tmp_path):
    work = tmp_path / 'work'
    write_scalars(work, stamp='20261122_090000', iters=30, evals=())  # an older run
    newest = write_scalars(work)
    out = _run(work)
    assert (f'{newest}: 10 training entries (iterations 10..100), 2 evaluations; last: '
            'coco/bbox_mAP 0.700, coco/segm_mAP 0.800') in out
    png = Image.open(work / 'curves.png')
    assert png.format == 'PNG' and png.size == (1100, 400)
    train, evals = _tool().load_scalars(str(newest))
    assert [e['x'] for e in train] == list(range(10, 101, 10))
    assert [e['x'] for e in evals] == [50, 100]  # drawn at their iteration, not step 0


def test_every_curve_is_drawn_with_its_points_in_its_colour(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    tool = _tool()
    train, evals = tool.load_scalars(str(write_scalars(tmp_path / 'w')))
    figures = []
    monkeypatch.setattr(plt, 'close', figures.append)  # keep the figure to read it back
    out = tmp_path / 'c.png'
    metrics = ['coco/bbox_mAP', 'coco/segm_mAP']
    tool.plot(train, evals, LOSSES, metrics, str(out), 'title')
    (fig, ) = figures
    ax_loss, ax_map = fig.axes
    lines = {ln.get_label(): ln for ln in ax_loss.get_lines()}
    assert list(lines) == LOSSES
    for key, ln in lines.items():
        assert list(ln.get_xdata()) == [e['x'] for e in train]
        assert list(ln.get_ydata()) == [e[key] for e in train]
    maps = {ln.get_label(): ln for ln in ax_map.get_lines()}
    assert list(maps) == metrics
    assert list(maps['coco/segm_mAP'].get_ydata()) == [0.4, 0.8]
    pixels = {tuple(p) for p in np.asarray(Image.open(out).convert('RGB')).reshape(-1, 3)}
    colours = {
        tuple(round(255 * c) for c in mcolors.to_rgb(ln.get_color()))
        for ln in [*lines.values(), *maps.values()]
    }
    assert len(colours) == len(LOSSES) and colours <= pixels  # each curve's own colour, drawn
    monkeypatch.undo()
    plt.close(fig)


def test_file_argument_and_chosen_keys(tmp_path):
    scalars = write_scalars(tmp_path / 'w')
    out = _run(scalars, '--out', tmp_path / 'c.png', '--losses', 'loss', '--metrics',
               'coco/bbox_mAP_50')
    assert 'last: coco/bbox_mAP_50 0.900' in out and Image.open(
        tmp_path / 'c.png').size == (1100, 400)


def test_clear_errors(tmp_path):
    out = _run(tmp_path, fail=True)
    assert f'error: {tmp_path} has no <timestamp>/vis_data/scalars.json' in out
    scalars = write_scalars(tmp_path / 'w')
    out = _run(scalars, '--metrics', 'coco/x', fail=True)
    assert f"error: {scalars} has no ['coco/x']; it has losses {LOSSES}" in out
    other = tmp_path / 'other.json'
    other.write_text('{"a": 1, "step": 1}\n')
    out = _run(other, fail=True)
    assert 'has neither loss* entries nor evaluation metrics' in out
    assert 'Traceback' not in out
