"""The one freezing policy: every ``trainable=`` a user writes is honoured or refused."""
import pytest
import torch.nn as nn
from helpers import atto_detector_cfg
from mmdet.registry import MODELS

from mmliera import FreezePolicy, LieRAFreezeHook
from mmliera.engine.hooks.freeze_hook import freeze_hooks_of
from mmliera.models import FreezePolicyError


def _detector(backbone_changes):
    cfg = atto_detector_cfg()
    cfg.model.backbone.update(backbone_changes)
    return MODELS.build(cfg.model)


def _norms(model):
    return {
        n: p.requires_grad
        for n, p in model.named_parameters() if n.startswith('backbone.') and '.norm.' in n
    }


def test_liera_convnext_trainable_norms_survive_the_hook_policy():
    model = _detector(dict(trainable=['norm']))
    assert _norms(model) and all(_norms(model).values())  # build time
    FreezePolicy().apply(model)  # what LieRARunner applies for LieRAFreezeHook's defaults
    norms = _norms(model)
    assert norms and all(norms.values()), [n for n, t in norms.items() if not t][:3]
    others = [
        n for n, p in model.backbone.named_parameters()
        if p.requires_grad and '.norm.' not in n and 'lora_' not in n
    ]
    assert not others, others[:3]


def test_type_liera_trainable_norms_survive_the_hook_policy():
    cfg = atto_detector_cfg()
    bb = dict(cfg.model.backbone)
    inner = {k: v for k, v in bb.items() if k not in ('type', 'adapter', 'trainable')}
    cfg.model.backbone = dict(
        type='LieRA',
        backbone=dict(inner, type='mmpretrain.ConvNeXt'),
        adapter=dict(rank=2),
        trainable=['norm'])
    model = MODELS.build(cfg.model)
    for hook in freeze_hooks_of([dict(type='LieRAFreezeHook')]):
        hook.policy.apply(model)
    norms = _norms(model)
    assert norms and all(norms.values())


def test_hook_frozen_pattern_wins_over_the_backbones_trainable():
    model = _detector(dict(trainable=['norm']))
    LieRAFreezeHook(frozen=[r'stages\.0\..*norm.*']).policy.apply(model)
    norms = _norms(model)
    assert not any(t for n, t in norms.items() if '.stages.0.' in n)
    assert any(t for n, t in norms.items() if '.stages.1.' in n)


@pytest.mark.parametrize('where', ['backbone', 'hook'])
def test_trainable_pattern_matching_nothing_is_a_clear_error(where):
    if where == 'backbone':
        with pytest.raises(FreezePolicyError, match="'nonorm' matches no parameter"):
            _detector(dict(trainable=['nonorm']))
    else:
        with pytest.raises(FreezePolicyError, match="'nonorm' matches no parameter"):
            FreezePolicy(trainable=['nonorm']).apply(_detector({}))


def test_frozen_stages_keep_their_adapters_and_norms_frozen():
    model = _detector(dict(frozen_stages=1, trainable=['norm']))
    FreezePolicy().apply(model)
    stage0 = {
        n: p.requires_grad
        for n, p in model.backbone.named_parameters()
        if n.startswith(('stages.0.', 'downsample_layers.0.'))
    }
    assert stage0 and not any(stage0.values())
    later = [
        p.requires_grad for n, p in model.backbone.named_parameters()
        if n.startswith('stages.1.') and n.endswith('lora_B')
    ]
    assert later and all(later)


def test_modules_built_with_adapters_are_adapted_parts_wherever_they_sit():
    """An adapted neck (type='LieRA') stays frozen but for its factors under the hook policy."""
    cfg = atto_detector_cfg()
    neck = dict(cfg.model.neck)
    cfg.model.neck = dict(type='LieRA', backbone=neck, adapter=dict(rank=2))
    model = MODELS.build(cfg.model)
    FreezePolicy().apply(model)
    neck_trains = {n for n, p in model.neck.named_parameters() if p.requires_grad}
    assert neck_trains and all(n.endswith(('lora_A', 'lora_B')) for n in neck_trains)
    assert all(p.requires_grad for p in model.rpn_head.parameters())


def test_inject_adapters_freeze_base_is_the_same_policy():
    import mmliera
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    mmliera.inject_adapters(net, rank=2)
    assert {n
            for n, p in net.named_parameters()
            if p.requires_grad} == {'0.lora_A', '0.lora_B', '2.lora_A', '2.lora_B'}
