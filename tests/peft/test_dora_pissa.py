"""DoRA and PiSSA coupled with LieRA: identity at init, gradients, merge, counts, training."""
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import (ROOT, assert_adapters_trained, atto_detector_cfg, runner_output, tool_output,
                     write_cfg)
from mmdet.registry import MODELS
from test_adapter_layers import CONVS, _grad_fns, randomize
from tiny_demo import tiny_demo_cfg

from mmliera import LieRAConv2d, LieRALinear, adapter_layers
from mmliera.checkpoint.safe_load import safe_load
from mmliera.models.param_report import adapter_counts

MODES = ['taylor', 'exp', 'lora']
VARIANTS = {
    'dora': dict(dora=True),
    'pissa': dict(init='pissa'),
    'dora+pissa': dict(dora=True, init='pissa')
}


@pytest.mark.parametrize('variant', sorted(VARIANTS))
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('case', sorted(CONVS) + ['linear'])
def test_step0_equals_plain_layer(case, mode, variant):
    torch.manual_seed(0)
    if case == 'linear':
        plain, x = nn.Linear(9, 7).double(), torch.randn(3, 9, dtype=torch.float64)
        layer = LieRALinear.from_module(plain, rank=3, mode=mode, **VARIANTS[variant])
    else:
        plain = nn.Conv2d(**CONVS[case]).double()
        x = torch.randn(2, plain.in_channels, 10, 11, dtype=torch.float64)
        layer = LieRAConv2d.from_module(plain, rank=3, mode=mode, **VARIANTS[variant])
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-10, atol=1e-10)
    if 'pissa' in variant:
        assert torch.count_nonzero(layer.lora_B) > 0  # principal factors, not B = 0


def test_pissa_factors_are_the_principal_svd_part():
    torch.manual_seed(0)
    lin = LieRALinear(12, 10, rank=3, init='pissa', dtype=torch.float64)
    u, s, vh = torch.linalg.svd(lin.weight.detach())
    top = u[:, :3] @ torch.diag(s[:3]) @ vh[:3]
    torch.testing.assert_close(lin.scaling * lin.lora_B @ lin.lora_A, top)
    assert torch.equal(lin.lora_A0, lin.lora_A) and torch.equal(lin.lora_B0, lin.lora_B)
    # depthwise: more factor rows than W's rank; the extra directions get the default init
    dw = LieRAConv2d(8, 8, 7, groups=8, padding=3, rank=4, init='pissa')
    assert dw.lora_A.shape[0] == 28 and torch.count_nonzero(dw.lora_B[:, 7:]) == 0


def test_plain_checkpoint_load_rederives_magnitude_and_pissa():
    layer = LieRAConv2d(6, 6, 3, padding=1, rank=2, dora=True, init='pissa').double()
    plain = nn.Conv2d(6, 6, 3, padding=1).double()
    res = layer.load_state_dict(plain.state_dict(), strict=False)
    assert set(res.missing_keys) == {'lora_A', 'lora_B', 'lora_magnitude', 'lora_A0', 'lora_B0'}
    x = torch.randn(1, 6, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('variant', sorted(VARIANTS))
@pytest.mark.parametrize('mode', MODES)
def test_gradcheck_new_parameters(mode, variant):
    torch.manual_seed(0)
    for layer, x in ((LieRAConv2d(
            4, 4, 3, padding=1, groups=2, rank=2, mode=mode,
            **VARIANTS[variant]).double(), torch.randn(1, 4, 5, 5, dtype=torch.float64)),
                     (LieRALinear(5, 3, rank=2, mode=mode, **VARIANTS[variant]).double(),
                      torch.randn(2, 5, dtype=torch.float64))):
        layer.weight.requires_grad_(False)
        randomize(layer, seed=3)
        # DoRA detaches ||W'|| (its §4.3), so A and B get that approximate gradient on purpose;
        # the new parameter, the magnitude, is checked exactly. Without DoRA: A and B.
        names = ['lora_magnitude'] if layer.dora else ['lora_A', 'lora_B']
        init = [getattr(layer, n).detach().clone().requires_grad_() for n in names]

        def f(*ps):
            return torch.func.functional_call(layer, dict(zip(names, ps)), (x, ))

        assert torch.autograd.gradcheck(f, tuple(init))


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_merge_unmerge_bit_exact(variant):
    torch.manual_seed(0)
    layer = LieRAConv2d(8, 8, 7, groups=8, padding=3, rank=2, **VARIANTS[variant])
    randomize(layer)
    if layer.lora_magnitude is not None:
        with torch.no_grad():
            layer.lora_magnitude.mul_(1.1)
    w0 = layer.weight.detach().clone()
    x = torch.randn(2, 8, 9, 9)
    y = layer(x)
    layer.merge()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), y, rtol=1e-6, atol=1e-6)
    layer.unmerge()
    assert torch.equal(layer.weight, w0) and torch.equal(layer(x), y)


@pytest.mark.slow  # base-size models with SVD init
def test_dora_adds_c_out_per_layer_in_the_count_tool():
    m = MODELS.build(
        dict(
            type='LieRAConvNeXt',
            arch='base',
            use_grn=True,
            layer_scale_init_value=0.,
            out_indices=[0, 1, 2, 3],
            adapter=dict(rank=16, dora=True)))
    c_out = sum(
        getattr(l, 'out_channels', getattr(l, 'out_features', 0))
        for l in adapter_layers(m).values())
    assert adapter_counts(m)['total'][1] == 17_271_104 + c_out
    out = tool_output('count_params', f'{ROOT}/configs/dora_liera_maskrcnn_convnextv2.py')
    assert re.search(rf'^total\s+112\s+{17_271_104 + c_out:,}$', out, re.M), out
    out = tool_output('count_params', f'{ROOT}/configs/pissa_liera_maskrcnn_convnextv2.py')
    assert re.search(r'^total\s+112\s+17,271,104$', out, re.M), out


@pytest.mark.parametrize('variant', ['none'] + sorted(VARIANTS))
def test_detector_backbone_equals_mmpretrain_convnext_at_init(variant):
    """The adapted backbone, given a plain mmpretrain ConvNeXt's weights, computes what that
    ConvNeXt computes (the reference is mmpretrain's own class, not mmliera code)."""
    from mmpretrain.models import ConvNeXt
    torch.manual_seed(0)
    cfg = atto_detector_cfg(**VARIANTS.get(variant, {}))
    args = {
        k: v
        for k, v in cfg.model.backbone.items()
        if k not in ('type', 'adapter', 'trainable', 'init_cfg')
    }
    plain = ConvNeXt(**args)
    plain.init_weights()
    with torch.no_grad():  # non-trivial norms too
        for n, p in plain.named_parameters():
            if 'norm' in n:
                p.add_(torch.randn_like(p) * 0.1)
    backbone = MODELS.build(cfg.model.backbone)  # as the detector builds it
    res = backbone.load_state_dict(plain.state_dict(), strict=False)
    assert not res.unexpected_keys and res.missing_keys
    assert all('lora_' in k for k in res.missing_keys)
    backbone.eval()
    plain.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        outs = backbone(x), plain(x)
    assert len(outs[0]) == len(outs[1]) == 4
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # and the adapters are live: a non-zero update moves the output away from ConvNeXt's
    layer = adapter_layers(backbone)['stages.3.0.pointwise_conv1']
    with torch.no_grad():
        layer.lora_B.add_(torch.randn_like(layer.lora_B) * 0.1)
        moved = backbone(x)[3]
    assert not torch.allclose(moved, outs[1][3], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('variant', ['dora', 'pissa'])
@pytest.mark.slow
def test_short_run_trains_and_evaluates(tmp_path, variant):
    adapter = "dict(dora=True)" if variant == 'dora' else "dict(init='pissa')"
    cfg = write_cfg(
        tmp_path / f'{variant}.py', tiny_demo_cfg(tmp_path, size=128), f"""
model = dict(backbone=dict(adapter={adapter}))
train_cfg = dict(max_iters=20, val_interval=20)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=20))
custom_hooks = [dict(type='LieRAFreezeHook')]
""")
    out = runner_output('train', cfg, '--work-dir', tmp_path / 'w')
    losses = [float(v) for v in re.findall(r'Iter\(train\).*?\sloss: ([\d.]+)', out)]
    assert len(losses) == 20
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5]), losses
    assert re.search(r'coco/bbox_mAP: [\d.]+', out) and re.search(r'coco/segm_mAP: [\d.]+', out)
    # the loss also falls with broken adapters (neck and heads train): check the adapters
    from mmengine.config import Config
    model = MODELS.build(Config.fromfile(cfg).model)
    state = safe_load(str(tmp_path / 'w' / 'iter_20.pth'))['state_dict']
    model.load_state_dict(state, strict=True)
    assert_adapters_trained(model.backbone, torch.randn(1, 3, 128, 128))
    if variant == 'dora':
        m = adapter_layers(model.backbone)['stages.2.0.depthwise_conv']
        norm = m.weight.detach().flatten(1).norm(dim=1)
        assert not torch.allclose(m.lora_magnitude, norm)  # the magnitudes trained too


# the paths that keep W' for backward (exp: ``_ExpHadamard``), against autograd through the
# formulas: DoRA, PiSSA, DoRA+PiSSA and the lean op turned off, for every mode
KEPT_W_PRIME = dict(VARIANTS, lean_off=dict())


def _reference_output(layer, x, A, B, m):
    """The layer's output written from the formulas with plain torch ops (float64)."""
    W, s = layer.weight.detach(), layer.scaling
    dW = B @ A
    if layer.lora_A0 is not None:
        dW = dW - layer.lora_B0 @ layer.lora_A0
    dW = s * dW.reshape(W.shape)
    W_new = {'taylor': W + W * dW, 'exp': W * torch.exp(dW), 'lora': W + dW}[layer.mode]
    if m is not None:  # DoRA: m ⊙ W' / ‖W'‖ per output channel, the norm detached
        norm = W_new.reshape(W.shape[0], -1).norm(dim=1).detach()
        W_new = W_new * (m.reshape(-1) / norm).view(-1, *([1] * (W.dim() - 1)))
    if isinstance(layer, nn.Linear):
        return F.linear(x, W_new, layer.bias)
    return F.conv2d(x, W_new, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)


@pytest.mark.parametrize('variant', sorted(KEPT_W_PRIME))
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('kind', ['conv', 'linear'])
def test_kept_w_prime_gradients_match_autograd_through_the_formulas(kind, mode, variant):
    torch.manual_seed(0)
    if kind == 'conv':
        layer = LieRAConv2d(
            6, 9, 3, padding=1, groups=3, rank=2, mode=mode, **KEPT_W_PRIME[variant]).double()
        x = torch.randn(2, 6, 7, 8, dtype=torch.float64)
    else:
        layer = LieRALinear(7, 5, rank=2, mode=mode, **KEPT_W_PRIME[variant]).double()
        x = torch.randn(3, 7, dtype=torch.float64)
    layer.weight.requires_grad_(False)
    layer.lean_backward = variant != 'lean_off'
    randomize(layer, seed=5)  # random non-zero A and B: W' differs from W everywhere
    m0 = layer.lora_magnitude
    if m0 is not None:
        with torch.no_grad():
            m0.mul_(1 + 0.2 * torch.rand(m0.shape, dtype=m0.dtype))
    out = layer(x)
    fns = _grad_fns(out)
    assert not any('LieRAOp' in f for f in fns)  # the W'-keeping path, not the lean op
    assert any('ExpHadamard' in f for f in fns) == (mode == 'exp'), fns
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    A = layer.lora_A.detach().clone().requires_grad_()
    B = layer.lora_B.detach().clone().requires_grad_()
    m = None if m0 is None else m0.detach().clone().requires_grad_()
    ref = _reference_output(layer, x, A, B, m)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    ref.backward(grad_out)
    torch.testing.assert_close(layer.lora_A.grad, A.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(layer.lora_B.grad, B.grad, rtol=1e-9, atol=1e-10)
    if m is not None:
        torch.testing.assert_close(layer.lora_magnitude.grad, m.grad, rtol=1e-9, atol=1e-10)
