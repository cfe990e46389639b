import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from helpers import DEMO, PRETRAIN, run, write_cfg  # noqa: E402

import mmliera  # noqa: E402,F401  (registers everything)


@pytest.fixture(scope='session', autouse=True)
def _demo_data_in_a_temporary_folder(tmp_path_factory):
    """The demo and transfer configs' generated data goes to a fresh folder, never the
    checkout's data/ (the configs read MMLIERA_DEMO_DATA / MMLIERA_TRANSFER_DATA; subprocesses
    inherit them)."""
    names = dict(MMLIERA_DEMO_DATA='synthetic_coco', MMLIERA_TRANSFER_DATA='transfer_coco')
    old = {k: os.environ.get(k) for k in names}
    base = tmp_path_factory.mktemp('demo_data')
    for k, name in names.items():
        os.environ[k] = f'{base / name}/'
    yield base / 'synthetic_coco'
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _cpu_unless_marked_cuda(request):
    """Every test but those marked ``cuda`` (tests/test_cuda.py) means the CPU: the tools it
    starts see no GPU (CUDA_VISIBLE_DEVICES=''), so on a CUDA machine they train, infer and
    measure memory on the CPU like the references they are compared with, and two ranks of a
    distributed test never share one GPU."""
    if request.node.get_closest_marker('cuda'):
        yield
        return
    old = os.environ.get('CUDA_VISIBLE_DEVICES')
    os.environ['CUDA_VISIBLE_DEVICES'] = ''
    yield
    if old is None:
        os.environ.pop('CUDA_VISIBLE_DEVICES', None)
    else:
        os.environ['CUDA_VISIBLE_DEVICES'] = old


@pytest.fixture(autouse=True)
def _mmdet_scope():
    from mmengine.registry import DefaultScope, init_default_scope
    init_default_scope('mmdet')
    yield
    DefaultScope._instance_dict.clear()


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory):
    """The demo through tools/train.py: pretrain stage (hook) then LieRA, short schedule."""
    tmp = tmp_path_factory.mktemp('demo')
    pretrained = tmp / 'pretrained' / 'backbone.pth'
    cfg = write_cfg(
        tmp / 'demo_short.py', DEMO, f"""
pretrained = '{pretrained}'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
train_cfg = dict(max_iters=60, val_interval=60)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=60, eta_min_ratio=0.05)]
default_hooks = dict(checkpoint=dict(interval=60))
custom_hooks = [
    dict(type='LieRAFreezeHook'),
    dict(type='AdapterCheckpointHook', interval=-1),
    dict(type='PretrainBackboneHook', config='{PRETRAIN}', checkpoint=pretrained,
         cfg_options={{'train_cfg.max_iters': 60, 'train_cfg.val_interval': 60,
                       'default_hooks.checkpoint.interval': 60,
                       'param_scheduler.1.end': 60}}),
]
""")
    work = tmp / 'work'
    out = run([sys.executable, 'tools/train.py', cfg, '--work-dir', str(work)])
    return dict(cfg=cfg, work=work, out=out, pretrained=pretrained, ckpt=str(work / 'iter_60.pth'))
