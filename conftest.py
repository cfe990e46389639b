import os
import sys

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'support'))

from helpers import DEMO, PRETRAIN, runner_output, tool_output, write_cfg  # noqa: E402

# test files that share a session fixture run on one xdist worker, so it is made once
SHARED = {
    'test_checkpoints.py': 'tiny_run',
    'test_infer.py': 'tiny_run',
}


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (setup.cfg): one worker per core this process may use, at most 4 (each worker
    makes its own session fixtures)."""
    return max(1, min(4, _cores() or 1))


def pytest_configure(config):
    """An xdist worker gets its share of the cores (torch threads here and, through
    OMP_NUM_THREADS, in the tools it starts): two workers with two threads each on two cores
    oversubscribe OpenMP, which slows some CPU kernels by orders of magnitude."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '0') or 0)
    if workers > 1:
        import torch
        threads = max(1, (_cores() or 1) // workers)
        os.environ['OMP_NUM_THREADS'] = str(threads)
        torch.set_num_threads(threads)


# the longest groups (--durations of the whole suite), started first so that at the end no
# worker waits alone for one of them (setup.cfg: --no-loadscope-reorder keeps this order)
LONGEST_FIRST = [
    'test_end_to_end.py', 'test_compare_methods.py', 'test_classification.py', 'test_faults.py',
    'test_fault_units.py', 'test_study_protocol.py', 'test_dora_pissa.py', 'test_configs.py',
    'test_liera_detector.py', 'test_tool_errors.py', 'tiny_run', 'test_benchmark.py',
    'test_mmdet_tools.py', 'test_any_backbone.py'
]


def pytest_collection(session):
    """mmliera registers everything before the test files are collected, wherever tests run (an
    xdist worker, or a run without workers); the xdist controller, which runs none, skips the
    import (about 9 s before the workers start)."""
    if os.environ.get('PYTEST_XDIST_WORKER') or not session.config.getoption('numprocesses', 0):
        import mmliera  # noqa: F401


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """For ``--dist loadgroup`` (setup.cfg): a test file runs whole on one worker (its module
    fixtures are made once), files of :data:`SHARED` with the others of their group; the groups
    of :data:`LONGEST_FIRST` come first. Runs before xdist reads the groups."""
    groups = {}
    for item in items:
        marks = [
            m.args[0] if m.args else m.kwargs.get('name') for m in item.iter_markers('xdist_group')
        ]
        if not marks:
            name = os.path.basename(item.nodeid.split('::')[0])
            marks = [SHARED.get(name, name)]
            item.add_marker(pytest.mark.xdist_group(marks[0]))
        groups[item.nodeid] = marks[0]
    rank = {g: i for i, g in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(groups[it.nodeid], len(rank)))  # stable: file order kept


_BUSY = {}  # (worker, group) -> seconds of setup + call + teardown


def _group(nodeid):
    name = os.path.basename(nodeid.split('::')[0])
    return SHARED.get(name, name)


def pytest_runtest_logreport(report):
    """Adds up each test's phases per worker and group (on the xdist controller every worker's
    reports arrive here; without workers everything is 'main')."""
    node = getattr(report, 'node', None)
    worker = getattr(getattr(node, 'gateway', None), 'id', None) or 'main'
    key = (worker, _group(report.nodeid))
    _BUSY[key] = _BUSY.get(key, 0.0) + (report.duration or 0.0)


def pytest_terminal_summary(terminalreporter):
    """Where the suite's time went: busy seconds per worker (the wall time is about the largest)
    and the largest groups (a test file, or files that share a fixture): what to trim or to
    start first (:data:`LONGEST_FIRST`)."""
    if not _BUSY:
        return
    workers, groups = {}, {}
    for (worker, group), sec in _BUSY.items():
        workers[worker] = workers.get(worker, 0.0) + sec
        groups[group] = groups.get(group, 0.0) + sec
    tr = terminalreporter
    tr.write_sep('=', 'busy time per worker and per group')
    tr.write_line('workers: ' + ', '.join(f'{w} {s:.0f} s' for w, s in sorted(workers.items())))
    top = sorted(groups.items(), key=lambda kv: -kv[1])[:12]
    tr.write_line('groups: ' + ', '.join(f'{g} {s:.0f} s' for g, s in top))


@pytest.fixture(scope='session', autouse=True)
def _demo_data_in_a_temporary_folder(tmp_path_factory):
    """The demo and transfer configs' generated data goes to a fresh folder, never the
    checkout's data/ (the configs read MMLIERA_DEMO_DATA, MMLIERA_TRANSFER_DATA and
    MMLIERA_TRANSFER_CLS_DATA; subprocesses
    inherit them)."""
    names = dict(
        MMLIERA_DEMO_DATA='synthetic_coco',
        MMLIERA_TRANSFER_DATA='transfer_coco',
        MMLIERA_TRANSFER_CLS_DATA='transfer_cls')
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
    """Every test but those marked ``cuda`` (tests/engine/test_cuda.py) means the CPU: the tools it
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
    """The demo through tools/train.py (in this process; the hook's pre-training is a process of
    its own as always): pretrain stage then LieRA, short schedule (the pre-training is not
    evaluated: no test reads its mAP)."""
    tmp = tmp_path_factory.mktemp('demo')
    pretrained = tmp / 'pretrained' / 'backbone.pth'
    cfg = write_cfg(
        tmp / 'demo_short.py', DEMO, f"""
pretrained = '{pretrained}'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
train_cfg = dict(max_iters=40, val_interval=40)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=40, eta_min_ratio=0.05)]
default_hooks = dict(checkpoint=dict(interval=40))
custom_hooks = [
    dict(type='LieRAFreezeHook'),
    dict(type='AdapterCheckpointHook', interval=-1),
    dict(type='PretrainBackboneHook', config='{PRETRAIN}', checkpoint=pretrained,
         cfg_options={{'train_cfg.max_iters': 40, 'default_hooks.checkpoint.interval': 40,
                       'param_scheduler.1.end': 40,
                       'val_cfg': None, 'val_dataloader': None, 'val_evaluator': None}}),
]
""")
    work = tmp / 'work'
    out = runner_output('train', cfg, '--work-dir', work)
    return dict(cfg=cfg, work=work, out=out, pretrained=pretrained, ckpt=str(work / 'iter_40.pth'))


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    """The one small trained run that the checkpoint, infer and export tests share (read it,
    never write into it): the demo's LieRA Mask R-CNN (atto, a random "pretrained" backbone)
    trained 2 iterations of batch 2 on 8 images through tools/train.py (in this process),
    then evaluated on its 4 val images."""
    from tiny_demo import tiny_demo_cfg
    tmp = tmp_path_factory.mktemp('tiny_run')
    cfg = tiny_demo_cfg(tmp, iters=2, val_interval=2)
    work = tmp / 'work'
    out = runner_output('train', cfg, '--work-dir', work)
    return dict(
        cfg=cfg,
        work=work,
        out=out,
        ckpt=str(work / 'iter_2.pth'),
        adapters=str(work / 'adapters_last.safetensors'),
        pretrained=str(tmp / 'backbone.pth'),
        val=tmp / 'data' / 'val')


@pytest.fixture(scope='session')
def tiny_export(tiny_run, tmp_path_factory):
    """tools/model_converters/merge_adapters.py on :func:`tiny_run`'s checkpoint: the folder with
    the plain mmdet
    ``config.py`` and ``model.pth``."""
    export = tmp_path_factory.mktemp('tiny_export') / 'export'
    tool_output('merge_adapters', tiny_run['cfg'], tiny_run['ckpt'], export)
    return export
