"""What the transfer study relies on: paired seeds (adapter init from its own generator),
no weight decay on adapter parameters by default, a pinned, reproducible starting backbone."""
import importlib.util
import os
import sys

import pytest
import torch
from helpers import ROOT, STUDY_CONFIGS
from mmengine.config import Config
from mmengine.runner import set_random_seed

from mmliera.models.peft.layers import adapter_generator

TRANSFER = os.path.join(STUDY_CONFIGS, 'transfer')
METHODS = ('frozen', 'full', 'norms', 'lora', 'liera_taylor', 'liera_exp', 'dora', 'pissa',
           'lora_r32')


def _built(method, seed=0):
    """The detector of projects/liera_study/configs/transfer/METHOD.py as the runner builds it:
    seed, build, init
    (no pretrained file: the backbone's init_cfg is dropped, its weights are the seed's)."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(os.path.join(TRANSFER, f'{method}.py'))
    cfg.model.backbone.pop('init_cfg')
    set_random_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, torch.get_rng_state()


def test_one_seed_gives_every_method_the_same_neck_heads_and_rng():
    ref, ref_rng = _built('frozen')
    ref_state = ref.state_dict()
    for method in METHODS[1:]:
        model, rng = _built(method)
        state = model.state_dict()
        shared = [k for k in ref_state if not k.startswith('backbone.')]
        assert shared and all(torch.equal(state[k], ref_state[k]) for k in shared), method
        # the adapted backbone's own weights are the plain one's too
        assert all(torch.equal(state[k], v) for k, v in ref_state.items()), method
        assert torch.equal(rng, ref_rng), f'{method}: the global RNG was consumed differently'
    other, _ = _built('lora', seed=1)
    assert not torch.equal(other.state_dict()['neck.lateral_convs.0.conv.weight'],
                           ref_state['neck.lateral_convs.0.conv.weight'])


def test_adapter_factors_depend_on_seed_and_layer_not_on_other_layers():
    lora, _ = _built('lora')
    again, _ = _built('lora')
    other, _ = _built('lora', seed=1)
    a = {n: p for n, p in lora.named_parameters() if n.endswith('lora_A')}
    assert all(torch.equal(p, dict(again.named_parameters())[n]) for n, p in a.items())
    assert not any(torch.equal(p, dict(other.named_parameters())[n]) for n, p in a.items())
    first, second = list(a.values())[:2]
    assert first.shape != second.shape or not torch.equal(first, second)
    # a layer's factors are the same whichever other layers are adapted
    torch.manual_seed(0)
    g1 = adapter_generator('stages.0.0.pointwise_conv1')
    torch.manual_seed(0)
    torch.rand(5)  # other draws from the global generator change nothing
    g2 = adapter_generator('stages.0.0.pointwise_conv1')
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    assert adapter_generator(None) is None


def make_runner(*args, **kwargs):
    """tests/engine/test_freeze_hook.py's ``make_runner`` (a tiny LieRA model's LieRARunner):
    that module as pytest imports it when it ran in this process, else read from its file (the
    library's test folders are not on the path)."""
    module = sys.modules.get('test_freeze_hook')
    if module is None:
        path = os.path.join(ROOT, 'tests', 'engine', 'test_freeze_hook.py')
        spec = importlib.util.spec_from_file_location('test_freeze_hook', path)
        module = importlib.util.module_from_spec(spec)
        sys.modules['test_freeze_hook'] = module
        spec.loader.exec_module(module)
    return module.make_runner(*args, **kwargs)


def _optimizer(cfg_text, tmp_path, decay=None):
    """The optimizer LieRARunner builds for a tiny LieRA model with AdamW weight decay 0.05."""
    optim = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    if decay is not None:
        optim['paramwise_cfg'] = decay
    runner = make_runner(tmp_path, optim_wrapper=optim)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    names = {id(p): n for n, p in runner.model.named_parameters()}
    return {
        names[id(p)]: g['weight_decay']
        for g in runner.optim_wrapper.optimizer.param_groups
        for p in g['params']
    }


@pytest.mark.parametrize('decay,adapter_wd', [(None, 0.0), (dict(adapter_decay_mult=1.0), 0.05),
                                              (dict(adapter_decay_mult=0.5), 0.025)])
def test_adapter_parameters_train_without_weight_decay_by_default(tmp_path, decay, adapter_wd):
    wd = _optimizer('', tmp_path, decay)
    adapters = {n: v for n, v in wd.items() if 'lora_' in n}
    others = {n: v for n, v in wd.items() if 'lora_' not in n}
    assert adapters and others
    assert set(adapters.values()) == {adapter_wd}
    assert set(others.values()) == {0.05}  # neck and head keep the base decay


def test_adapter_decay_with_custom_keys_and_a_bad_value(tmp_path):
    wd = _optimizer('', tmp_path, dict(custom_keys={'neck': dict(decay_mult=2.0)}))
    assert {v for n, v in wd.items() if 'lora_' in n} == {0.0}
    assert {v for n, v in wd.items() if n.startswith('neck.')} == {0.1}
    with pytest.raises(ValueError, match='adapter_decay_mult must be a number >= 0'):
        _optimizer('', tmp_path / 'bad', dict(adapter_decay_mult=-1))


def test_dora_magnitude_and_pissa_factors_count_as_adapter_parameters():
    from torch import nn

    from mmliera.engine.runner.adapter_weight_decay import split_adapter_decay
    from mmliera.models.peft.inject import inject_adapters
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    inject_adapters(model, rank=2, dora=True)  # (it freezes nothing: every parameter trains)
    opt = torch.optim.AdamW(model.parameters(), weight_decay=0.1)
    assert split_adapter_decay(opt, model) == 6  # A, B, magnitude of each layer
    by_name = {
        n: g['weight_decay']
        for n, p in model.named_parameters()
        for g in opt.param_groups if any(p is q for q in g['params'])
    }
    assert by_name['0.lora_magnitude'] == 0 and by_name['0.weight'] == 0.1
    assert sum(len(g['params']) for g in opt.param_groups) == len(list(model.parameters()))


# ---------------------------------------------------------------------------------------------
# the starting backbone: reproducible, checksummed, pinned; clear errors


class _Runner:
    """What PretrainBackboneHook uses of a runner: a logger that keeps its lines."""

    def __init__(self):
        self.lines = []
        log = self.lines.append
        self.logger = type('L', (), dict(info=staticmethod(log), warning=staticmethod(log)))()


def _tiny_pretrain_cfg(tmp_path):
    from helpers import PRETRAIN, write_cfg
    data = tmp_path / 'data'
    return write_cfg(
        tmp_path / 'tiny_pretrain.py', PRETRAIN, f"""
data_root = '{data}/'
synthetic = dict(image_size=64, splits=dict(pretrain=4, train=2, val=2))
train_dataloader = dict(batch_size=2, num_workers=2,
                        dataset=dict(data_root=data_root, synthetic=synthetic))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, synthetic=synthetic))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
model = dict(backbone=dict(init_cfg=None))
train_cfg = dict(max_iters=3, val_interval=1000)
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=3), logger=dict(interval=1))
""")


def _pretrain(tmp_path, name, monkeypatch, env, **kw):
    from mmliera.engine.hooks.pretrain_backbone_hook import PretrainBackboneHook
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    hook = PretrainBackboneHook(_tiny_pretrain_cfg(tmp_path), str(tmp_path / name / 'bb.pth'), **kw)
    runner = _Runner()
    hook.before_run(runner)
    return hook, runner


@pytest.mark.slow
def test_pretraining_gives_the_same_weights_however_the_run_was_launched(tmp_path, monkeypatch):
    # as launched by torchrun with 2 threads (a rank's variables in the environment) ...
    a, runner = _pretrain(
        tmp_path, 'a', monkeypatch,
        dict(
            OMP_NUM_THREADS='2',
            RANK='0',
            WORLD_SIZE='1',
            LOCAL_RANK='0',
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT='1'))
    # ... and as a plain one-thread process
    for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(k)
    b, _ = _pretrain(tmp_path, 'b', monkeypatch, dict(OMP_NUM_THREADS='1'))
    assert a.weights_sha256 == b.weights_sha256 and len(a.weights_sha256) == 64
    from mmliera.checkpoint import weights_sha256
    assert weights_sha256(tmp_path / 'a' / 'bb.pth') == a.weights_sha256
    assert any('weights sha256 ' + a.weights_sha256 in ln for ln in runner.lines)
    # a pinned checksum that differs is reported (the file is kept)
    c = type(a)(a.config, a.checkpoint, sha256='0' * 64)
    runner = _Runner()
    c.before_run(runner)
    warning = [ln for ln in runner.lines if 'not the 0000000000000000... this config pins' in ln]
    assert len(warning) == 1 and 'Delete the file to pre-train it again' in warning[0]


@pytest.mark.slow  # a failing pre-training process
def test_pretraining_errors_are_one_clear_line(tmp_path):
    from mmliera.engine.hooks.pretrain_backbone_hook import (PretrainBackboneError,
                                                             PretrainBackboneHook)
    from mmliera.utils.errors import UserError
    missing = PretrainBackboneHook(str(tmp_path / 'nope.py'), str(tmp_path / 'bb.pth'))
    with pytest.raises(
            PretrainBackboneError,
            match='pre-training config .*nope.py does not '
            'exist; fix its config= or put the pre-trained backbone at'):
        missing.before_run(_Runner())
    bad = tmp_path / 'bad.py'
    bad.write_text("_base_ = ['" +
                   os.path.join(ROOT, 'configs', 'demo', '_base_slim_maskrcnn_synthetic.py') +
                   "']\n"
                   "model = dict(backbone=dict(arch='nonexistent'))\n")
    failing = PretrainBackboneHook(str(bad), str(tmp_path / 'bb.pth'))
    with pytest.raises(PretrainBackboneError) as e:
        failing.before_run(_Runner())
    assert isinstance(e.value, UserError)
    msg = str(e.value)
    assert msg.startswith('PretrainBackboneHook: pre-training the backbone failed (exit status 1)')
    assert 'Unavailable arch' in msg and '\n' not in msg and 'pretrain.log' in msg
    assert not (tmp_path / 'bb.pth').exists()


RANKS_SCRIPT = r'''
import os, sys, time
import torch
import torch.distributed as dist
from mmliera.engine.hooks.pretrain_backbone_hook import PretrainBackboneError, PretrainBackboneHook

config, ckpt, out = sys.argv[1:4]
dist.init_process_group('gloo')
rank = dist.get_rank()


class Runner:
    class logger:
        info = warning = staticmethod(print)


def fake_pretrain(runner):  # a slow pre-training that writes the backbone at the end
    open(os.path.join(out, f'pretrained_by_rank{rank}'), 'w').close()
    time.sleep(3)
    torch.save(dict(meta={}, state_dict={'backbone.w': torch.ones(2)}), ckpt)


hook = PretrainBackboneHook(config, ckpt)
if os.path.isfile(config):  # else the real one: its missing-config error
    hook._pretrain = fake_pretrain
try:
    hook.before_run(Runner())
    result = f'file there: {os.path.isfile(ckpt)}'
except PretrainBackboneError as e:
    result = f'error: {e}'
with open(os.path.join(out, f'rank{rank}'), 'w') as f:
    f.write(result)
dist.destroy_process_group()
'''


@pytest.mark.slow
@pytest.mark.parametrize('outcome', ['pretrained', 'failed'])
def test_with_several_ranks_only_rank_0_pretrains_and_every_rank_learns_the_outcome(
        tmp_path, outcome):
    """2 processes: rank 0 pre-trains while rank 1 waits for it; rank 1 goes on only once the
    file is there, or stops with rank 0's error (a missing config) instead of waiting."""
    import subprocess
    import sys

    from helpers import communicate, start
    script = tmp_path / 'ranks.py'
    script.write_text(RANKS_SCRIPT)
    config = tmp_path / 'pretrain.py'
    if outcome == 'pretrained':
        config.write_text('# the fake pre-training reads nothing\n')
    ckpt = tmp_path / 'bb.pth'
    proc = start([
        sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
        str(script),
        str(config),
        str(ckpt),
        str(tmp_path)
    ],
                 stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT)
    out = communicate(proc, timeout=300)
    assert proc.returncode == 0, out[-3000:]
    results = [(tmp_path / f'rank{r}').read_text() for r in (0, 1)]
    if outcome == 'pretrained':
        assert results == ['file there: True'] * 2
        assert sorted(p.name
                      for p in tmp_path.glob('pretrained_by_rank*')) == ['pretrained_by_rank0']
    else:
        assert results[0] == results[1] and results[0].startswith('error: PretrainBackboneHook: '
                                                                  'the pre-training config')
        assert not list(tmp_path.glob('pretrained_by_rank*'))


def test_frozen_tensors_are_one_info_line_not_a_warning_each(tmp_path):
    """With a paramwise_cfg mmengine warns once per frozen tensor; LieRARunner says it once."""
    import logging
    runner = make_runner(
        tmp_path,
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=3.0)})))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    runner.logger.addHandler(handler)
    try:
        runner.build_optim_wrapper(runner.optim_wrapper)
    finally:
        runner.logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    frozen = sum(not p.requires_grad for p in runner.model.parameters())
    assert frozen > 10
    assert not [m for m in messages if 'is skipped since' in m]
    assert f'LieRARunner: {frozen} frozen parameter tensors left out of the optimizer' in messages
