"""inject_adapters: target matching, overrides, sharing, and one clear error per bad input."""
import pytest
import torch
import torch.nn as nn

from mmliera import LieRAConv2d, LieRALinear, adapter_layers, inject_adapters


class Block(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pointwise_conv1 = nn.Linear(c, 4 * c)
        self.pointwise_conv2 = nn.Linear(4 * c, c)


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.BatchNorm2d(8))
        self.stages = nn.ModuleList([nn.Sequential(Block(8), Block(8))])
        self.attn = nn.MultiheadAttention(8, 2)


def test_default_targets_every_conv_and_linear_and_shares_weights():
    net = Net()
    before = {n: p for n, p in net.named_parameters()}
    names = inject_adapters(net, rank=2)
    assert names == sorted(names)
    assert names == [
        'stages.0.0.depthwise_conv', 'stages.0.0.pointwise_conv1', 'stages.0.0.pointwise_conv2',
        'stages.0.1.depthwise_conv', 'stages.0.1.pointwise_conv1', 'stages.0.1.pointwise_conv2',
        'stem.0'
    ]
    assert isinstance(net.stem[0], LieRAConv2d)
    assert isinstance(net.stages[0][1].pointwise_conv2, LieRALinear)
    after = dict(net.named_parameters())
    for n, p in before.items():
        assert after[n] is p  # shared, not copied
    assert set(after) - set(before) == {f'{n}.{f}' for n in names for f in ('lora_A', 'lora_B')}
    assert not isinstance(net.attn.out_proj, LieRALinear)  # MHA never calls out_proj.forward


def test_regex_and_suffix_matching_with_overrides():
    net = Net()
    names = inject_adapters(
        net,
        rank=4,
        alpha=2.0,
        mode='taylor',
        targets=[
            'depthwise_conv',
            dict(pattern=r'stages\.0\.1\.pointwise_conv\d', rank=8),
            dict(pattern='stem.0', alpha=3.0, mode='exp')
        ])
    assert names == [
        'stages.0.0.depthwise_conv', 'stages.0.1.depthwise_conv', 'stages.0.1.pointwise_conv1',
        'stages.0.1.pointwise_conv2', 'stem.0'
    ]
    layers = adapter_layers(net)
    assert layers['stages.0.0.depthwise_conv'].rank == 4
    assert layers['stages.0.0.depthwise_conv'].alpha == 2.0
    assert layers['stages.0.1.pointwise_conv1'].rank == 8
    assert layers['stages.0.1.pointwise_conv1'].alpha == 16  # follows the overridden rank
    assert layers['stem.0'].mode == 'exp' and layers['stem.0'].alpha == 3.0
    # full match only: 'conv' alone matches nothing
    with pytest.raises(ValueError, match="target 'conv' matched no module"):
        inject_adapters(Net(), rank=2, targets=['conv'])


def test_mapping_form_of_targets():
    net = Net()
    names = inject_adapters(
        net, rank=2, targets={
            'pointwise_conv1': dict(rank=3),
            'stem.0': dict(mode='exp')
        })
    assert names == ['stages.0.0.pointwise_conv1', 'stages.0.1.pointwise_conv1', 'stem.0']
    layers = adapter_layers(net)
    for n in names[:2]:
        assert (layers[n].rank, layers[n].alpha, layers[n].mode) == (3, 6, 'taylor')
        assert layers[n].lora_A.shape == (3, 8) and layers[n].lora_B.shape == (32, 3)
    assert (layers['stem.0'].rank, layers['stem.0'].mode) == (2, 'exp')
    assert layers['stem.0'].lora_A.shape == (2 * 4, 3 * 4)


@pytest.mark.parametrize('kwargs,exc,msg', [
    (dict(rank=0), ValueError, 'rank must be a positive int'),
    (dict(rank=2.5), ValueError, 'rank must be a positive int'),
    (dict(rank=True), ValueError, 'rank must be a positive int'),
    (dict(rank=2, mode='hira'), ValueError, "unknown LieRA mode 'hira'"),
    (dict(rank=2, alpha=-1), ValueError, 'alpha must be a positive'),
    (dict(rank=2, dropout=1.0), ValueError, r'dropout must be a number in \[0, 1\)'),
    (dict(rank=2, targets=['nope']), ValueError, "target 'nope' matched no module"),
    (dict(rank=2, targets=['norm']), TypeError, "matched only modules that are not adaptable"),
    (dict(rank=2, targets=['out_proj']), TypeError, 'out_proj'),
    (dict(rank=2, targets=['(']), ValueError, 'not a valid regex'),
    (dict(rank=2, targets=[dict(pattern='stem.0', ranks=3)]), ValueError, "unknown keys"),
    (dict(rank=2, targets=[]), ValueError, 'non-empty list'),
])
def test_bad_input_one_clear_error_and_nothing_changed(kwargs, exc, msg):
    net = Net()
    before = [type(m) for m in net.modules()]
    with pytest.raises(exc, match=msg):
        inject_adapters(net, **kwargs)
    assert [type(m) for m in net.modules()] == before


def test_error_names_the_layer():
    with pytest.raises(ValueError, match='stem.0: rank must be'):
        inject_adapters(Net(), rank=-1, targets=['stem.0'])


def test_no_adaptable_module():
    with pytest.raises(ValueError, match='no nn.Conv2d / nn.Linear submodule'):
        inject_adapters(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)), rank=2)


def test_inject_twice_raises():
    net = Net()
    inject_adapters(net, rank=2)
    with pytest.raises(ValueError, match='already has a LieRA adapter'):
        inject_adapters(net, rank=2)
    with pytest.raises(ValueError, match='stem.0: already has a LieRA adapter'):
        inject_adapters(net, rank=2, targets=['stem.0'])
    with pytest.raises(ValueError, match='already has a LieRA adapter'):
        LieRAConv2d.from_module(net.stem[0], rank=2)


def test_groups_violation_is_named():
    conv = nn.Conv2d(4, 4, 3, groups=2)
    conv.out_channels = 5  # a corrupted layer
    with pytest.raises(ValueError, match='blk: out_channels=5 is not divisible by groups=2'):
        LieRAConv2d.from_module(conv, rank=2, name='blk')


def test_not_a_conv_or_linear():
    with pytest.raises(TypeError, match='LieRALinear adapts Linear, got Conv2d'):
        LieRALinear.from_module(nn.Conv2d(2, 2, 1), rank=1)


def test_exact_zero_weights_warn_with_count():
    lin = nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight[0, :3] = 0
    with pytest.warns(UserWarning, match='3 of 16 weights are exactly 0'):
        LieRALinear.from_module(lin, rank=2)


def test_freeze_base_default_and_opt_out():
    net = Net()
    inject_adapters(net, rank=2, targets=['stem.0'])
    trains = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trains == {'stem.0.lora_A', 'stem.0.lora_B'}  # whole module frozen, not just stem
    net = Net()
    net.stem[1].weight.requires_grad_(False)
    inject_adapters(net, rank=2, targets=['stem.0'], freeze_base=False)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {'stem.1.weight'}  # requires_grad left as it was


def _readme_snippet(title):
    import os
    import re

    from helpers import ROOT
    text = open(os.path.join(ROOT, 'README.md')).read()
    section = text.split(f'## {title}', 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def test_readme_adapter_layers_snippet_trains_only_the_factors():
    """README's plain-PyTorch snippet, run as written: one step moves only A and B."""
    code = _readme_snippet('The Python API')
    spy = {}
    real_step = torch.optim.AdamW.step

    def step(self, *a, **k):  # parameter values just before the optimizer step
        spy['before'] = {id(p): p.detach().clone() for g in self.param_groups for p in g['params']}
        return real_step(self, *a, **k)

    scope = {}
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.AdamW, 'step', step)
        exec(compile(code, 'README.md', 'exec'), scope)
    model, optimizer = scope['model'], scope['optimizer']
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    factors = {f'{n}.{f}' for n in scope['names'] for f in ('lora_A', 'lora_B')}
    assert trains == factors and len(scope['names']) > 10
    held = {id(p) for g in optimizer.param_groups for p in g['params']}
    assert held == {id(p) for n, p in model.named_parameters() if n in factors}
    moved = [
        n for n, p in model.named_parameters()
        if id(p) in spy['before'] and not torch.equal(spy['before'][id(p)], p)
    ]
    assert any(n.endswith('lora_B') for n in moved)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n not in factors)
    assert all(p.grad is None for n, p in model.named_parameters() if n not in factors)


def test_readme_own_config_snippet_builds_and_trains_only_the_factors(tmp_path):
    """README's "In your own config" snippet, as a config file: mmdet's Mask R-CNN R-50 with
    LieRA in its backbone; the backbone trains only adapter factors (frozen_stages kept)."""
    from mmengine.config import Config

    from mmliera.apis import build_model
    from mmliera.models.peft import is_adapter_factor
    path = tmp_path / 'own.py'
    path.write_text(_readme_snippet('In your own config'))
    cfg = Config.fromfile(str(path))
    assert cfg.runner_type == 'LieRARunner' and cfg.custom_hooks == [dict(type='LieRAFreezeHook')]
    cfg.model.backbone.backbone.init_cfg = None  # no download
    model = build_model(cfg)
    trains = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trains and all(is_adapter_factor(n) for n in trains)
    assert not any(n.startswith('layer1.') for n in trains)  # frozen_stages=1: adapters too
    assert model.backbone.liera_adapter['rank'] == 16
