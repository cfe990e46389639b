"""mmdet's own tools and APIs, from the installed mmdet package, on an mmliera config and its
checkpoints, with ``custom_imports=['mmliera']`` (the config's) as the only link to mmliera.

A tiny LieRAConvNeXt Mask R-CNN (the legacy fixtures' config) is trained for 2 iterations by
mmdet's ``tools/train.py``; then ``tools/test.py``, ``init_detector`` + ``inference_detector``,
``DetInferencer``, ``analysis_tools/benchmark.py``, ``get_flops.py`` and ``analyze_logs.py`` run
on it, each in a fresh process, as a user runs them.
"""
import glob
import os
import os.path as osp
import pickle
import subprocess
import sys

import mmdet
import pytest
import torch
from helpers import ROOT, write_cfg

MIM_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
FIXTURES = osp.join(ROOT, 'tests', 'fixtures', 'legacy')

pytestmark = pytest.mark.slow

API_SCRIPT = r'''
import sys
from mmdet.apis import DetInferencer, inference_detector, init_detector
config, ckpt, image = sys.argv[1:]
model = init_detector(config, ckpt, device='cpu')  # custom_imports of the config: mmliera
sample = inference_detector(model, image)
print('init_detector ok', type(model).__name__, type(model.backbone).__name__,
      len(sample.pred_instances))
result = DetInferencer(model=config, weights=ckpt, device='cpu', show_progress=False)(
    image, return_datasamples=True)
print('DetInferencer ok', len(result['predictions'][0].pred_instances))
'''


def _env(tmp):
    """The tools' environment: this checkout importable, the fixtures' backbone, and a data
    folder of the tiny config's own (the session's demo data folder holds other splits)."""
    return dict(
        os.environ,
        PYTHONPATH=ROOT,
        MMLIERA_FIXTURE_DIR=FIXTURES + '/',
        MMLIERA_DEMO_DATA=f'{tmp}/data/',
        MPLBACKEND='Agg')


def _run(cmd, tmp, timeout=600):
    done = subprocess.run(
        [sys.executable] + cmd,
        cwd=str(tmp),
        env=_env(tmp),
        text=True,
        capture_output=True,
        timeout=timeout)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """mmdet's tools/train.py, 2 iterations, on the tiny LieRA config."""
    tmp = tmp_path_factory.mktemp('mmdet_tools')
    cfg = write_cfg(tmp / 'tiny.py', osp.join(FIXTURES, 'tiny_liera_maskrcnn.py'))
    work = tmp / 'work'
    # training without validation: its json log then holds training entries only
    # (analyze_logs.py counts every entry's 'step' as a training iteration)
    code, out = _run([
        osp.join(MIM_TOOLS, 'train.py'), cfg, '--work-dir',
        str(work), '--cfg-options', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'
    ], tmp)
    assert code == 0, out[-5000:]
    assert 'LieRA freezing policy in force' in out  # LieRARunner + LieRAFreezeHook ran
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file(), out[-3000:]
    image = sorted(glob.glob(str(tmp / 'data' / 'val' / '*.jpg')))[0]
    return tmp, cfg, str(ckpt), work, image


def test_mmdet_tools_and_apis_work(trained):
    tmp, cfg, ckpt, work, image = trained
    api = tmp / 'api.py'
    api.write_text(API_SCRIPT)
    logs = glob.glob(str(work / '*' / 'vis_data' / '*.json'))
    assert logs, 'no json log of the training run'
    tools = osp.join(MIM_TOOLS, 'analysis_tools')
    commands = {
        # score_thr 0: the 2-iteration model's low scores still give COCO mAP figures
        'test': [
            osp.join(MIM_TOOLS, 'test.py'), cfg, ckpt, '--work-dir',
            str(tmp / 'test'), '--cfg-options', 'model.test_cfg.rcnn.score_thr=0.0'
        ],
        'apis': [str(api), cfg, ckpt, image],
        'benchmark': [
            osp.join(tools, 'benchmark.py'), cfg, '--checkpoint', ckpt, '--task', 'inference',
            '--max-iter', '3', '--num-warmup', '1', '--log-interval', '1', '--work-dir',
            str(tmp / 'bench')
        ],
        'get_flops': [osp.join(tools, 'get_flops.py'), cfg, '--num-images', '1'],
        'analyze_logs': [
            osp.join(tools, 'analyze_logs.py'), 'plot_curve', logs[0], '--keys', 'loss', '--out',
            str(tmp / 'loss.png')
        ],
    }
    procs = {
        k:
        subprocess.Popen(
            [sys.executable] + c,
            cwd=str(tmp),
            env=_env(tmp),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        for k, c in commands.items()
    }
    outs = {k: p.communicate(timeout=900)[0] for k, p in procs.items()}
    cuda = torch.cuda.is_available()
    # mmdet's benchmark.py --task inference loads the checkpoint, then calls model.cuda(): on
    # a machine without CUDA it must get past the load and stop only there
    expect_fail = set() if cuda else {'benchmark'}
    failed = [
        f'== {k}\n{outs[k][-3000:]}' for k, p in procs.items()
        if (p.returncode != 0) != (k in expect_fail)
    ]
    assert not failed, '\n'.join(failed)
    assert 'Weights only load failed' not in outs['benchmark'], outs['benchmark'][-3000:]
    if cuda:
        assert 'Overall fps' in outs['benchmark'], outs['benchmark'][-2000:]
    else:
        assert 'Found no NVIDIA driver' in outs['benchmark'] or \
            'not compiled with CUDA' in outs['benchmark'], outs['benchmark'][-2000:]
    assert 'coco/bbox_mAP' in outs['test'] and 'coco/segm_mAP' in outs['test']
    assert 'init_detector ok MaskRCNN LieRAConvNeXt' in outs['apis']
    assert 'DetInferencer ok' in outs['apis']
    assert 'Flops' in outs['get_flops'], outs['get_flops'][-2000:]
    assert (tmp / 'loss.png').is_file()


class _Payload:
    """Unpickling this runs ``os.system`` (what an attacker's checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class _GetattrPayload:
    """... or reaches a method through ``getattr`` (the one builtin the allow-list guards) on an
    allowed type: ``numpy.ndarray.tofile`` writes files."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import numpy as np
        return getattr, (np.ndarray, 'tofile')


@pytest.mark.parametrize('payload', [_Payload, _GetattrPayload])
def test_a_checkpoint_with_another_global_is_refused_by_every_loader(tmp_path, payload):
    from mmdet.apis import init_detector
    from mmengine.runner import CheckpointLoader

    import mmliera  # noqa: F401  (registers the allow-list process-wide)
    from mmliera.checkpoint import safe_load
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(meta={}, state_dict={}, extra=payload(str(marker))), str(evil))
    loaders = {
        'torch.load':
        lambda: torch.load(str(evil)),
        'mmliera safe_load':
        lambda: safe_load(str(evil)),
        'mmengine CheckpointLoader':
        lambda: CheckpointLoader.load_checkpoint(str(evil), 'cpu'),
        'init_detector':
        lambda: init_detector(
            osp.join(FIXTURES, 'tiny_liera_maskrcnn.py'), str(evil), device='cpu'),
    }
    for name, load in loaders.items():
        with pytest.raises(pickle.UnpicklingError):
            load()
        assert not marker.exists(), name
