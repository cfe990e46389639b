"""LieRAConvNeXt: registry, arguments, freezing, pretrained loading, exact adapter counts."""
import pytest
import torch
from mmdet.registry import MODELS

from mmliera import LieRAConvNeXt, adapter_layers
from mmliera.models.param_report import adapter_counts

V2 = dict(
    use_grn=True, layer_scale_init_value=0., out_indices=[0, 1, 2, 3], gap_before_final_norm=False)


def build(**kw):
    return MODELS.build(dict(type='LieRAConvNeXt', **{**dict(arch='atto', **V2), **kw}))


def test_registered_and_named_like_convnext():
    m = build(adapter=dict(rank=4))
    assert isinstance(m, LieRAConvNeXt) and 'ConvNeXt' in type(m).__name__
    names = [n for n, _ in m.named_parameters()]
    assert 'stages.0.0.depthwise_conv.weight' in names
    assert 'stages.0.0.depthwise_conv.lora_A' in names
    assert 'downsample_layers.0.0.lora_B' in names
    plain = MODELS.build(dict(type='mmpretrain.ConvNeXt', arch='atto', **V2))
    extra = set(names) - {n for n, _ in plain.named_parameters()}
    assert extra and all(n.endswith(('.lora_A', '.lora_B')) for n in extra)
    assert set(m.state_dict()) - set(plain.state_dict()) == extra


def test_default_targets_cover_stem_downsample_depthwise_pointwise():
    m = build()
    kinds = adapter_counts(m)
    assert kinds['stem'][0] == 1 and kinds['downsample'][0] == 3
    assert kinds['depthwise'][0] == sum(m.depths) and kinds['pointwise'][0] == 2 * sum(m.depths)
    assert m.liera_adapter == dict(
        mode='taylor', rank=16, alpha=None, dropout=0.0, targets=None, dora=False, init='default')
    assert all(layer.rank == 16 and layer.alpha == 32 for layer in adapter_layers(m).values())


def test_only_adapter_factors_train_and_train_keeps_it():
    m = build(adapter=dict(rank=2), frozen_stages=1)
    m.train()
    for n, p in m.named_parameters():
        in_frozen_stage = n.startswith(('stages.0.', 'downsample_layers.0.'))
        expect = n.endswith(('lora_A', 'lora_B')) and not in_frozen_stage
        assert p.requires_grad == expect, n
    m2 = build(adapter=dict(rank=2), trainable=[r'norm\d\..*', 'gamma', 'beta'])
    m2.train()
    assert m2.norm3.weight.requires_grad and m2.stages[1][0].pointwise_conv1.bias.requires_grad \
        is False
    assert m2.stages[1][0].grn.gamma.requires_grad


@pytest.mark.parametrize('kwargs,msg', [
    (dict(adapter=dict(rank=0)), 'rank must be a positive int'),
    (dict(adapter=dict(ranks=4)), "unknown adapter keys \\['ranks'\\]"),
    (dict(adapter=dict(mode='dora2')), "unknown LieRA mode 'dora2'"),
    (dict(adapter=dict(targets=['nothing_here'])), "target 'nothing_here' matched no module"),
    (dict(trainable=['nope']), "trainable pattern 'nope' matches no parameter"),
])
def test_bad_adapter_config(kwargs, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        build(**kwargs)


def test_pretrained_checkpoint_loads_into_frozen_weights(tmp_path):
    torch.manual_seed(0)
    plain = MODELS.build(dict(type='mmpretrain.ConvNeXt', arch='atto', **V2))
    plain.init_weights()
    with torch.no_grad():  # make GRN and norms non-trivial
        for n, p in plain.named_parameters():
            if 'grn' in n or 'norm' in n:
                p.add_(torch.randn_like(p) * 0.1)
    sd = {'backbone.' + k: v for k, v in plain.state_dict().items()}
    sd['head.fc.weight'] = torch.randn(10, 320)  # a classifier checkpoint has a head too
    ckpt = tmp_path / 'convnext-v2-atto.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': sd}, ckpt)

    m = build(
        adapter=dict(rank=4),
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'))
    A_before = {n: l.lora_A.detach().clone() for n, l in adapter_layers(m).items()}
    m.init_weights()
    for k, v in plain.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    for n, layer in adapter_layers(m).items():
        assert torch.count_nonzero(layer.lora_B) == 0
        assert torch.equal(layer.lora_A, A_before[n])
    m.eval()
    plain.eval()
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(m(x), plain(x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize('rank,expected', [(16, 17_271_104), (32, 34_542_208)])
def test_paper_adapter_counts_convnext_v2_base(rank, expected):
    m = build(arch='base', adapter=dict(rank=rank))
    counts = adapter_counts(m)
    assert counts['total'][1] == expected
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == expected


def test_layer_decay_constructor_works():
    from helpers import atto_detector_cfg
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
    det = MODELS.build(atto_detector_cfg().model)
    ctor = LearningRateDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)),
        dict(decay_rate=0.9, decay_type='layer_wise', num_layers=6))
    ow = ctor(det)
    held = {id(p) for g in ow.optimizer.param_groups for p in g['params']}
    trainable = {id(p) for p in det.parameters() if p.requires_grad}
    assert held == trainable
    scales = {g['lr_scale'] for g in ow.optimizer.param_groups if g['params'][0].requires_grad}
    assert len(scales) > 3  # layer-wise decay assigned by stages.* names
