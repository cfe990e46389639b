"""LieRA adapter layers against a reference written from the formulas (float64)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmliera
from mmliera import LieRAConv2d, LieRALinear, inject_adapters, merge_adapters, unmerge_adapters

MODES = ['taylor', 'exp', 'lora']

CONVS = {
    'depthwise7x7': dict(in_channels=6, out_channels=6, kernel_size=7, padding=3, groups=6),
    'grouped': dict(in_channels=6, out_channels=9, kernel_size=3, padding=1, groups=3),
    'pointwise1x1': dict(in_channels=5, out_channels=7, kernel_size=1),
    'strided2x2': dict(in_channels=4, out_channels=8, kernel_size=2, stride=2),
    'stem4x4': dict(in_channels=3, out_channels=8, kernel_size=4, stride=4),
    'dilation2': dict(in_channels=4, out_channels=5, kernel_size=3, dilation=2, padding=2),
    'same': dict(in_channels=4, out_channels=5, kernel_size=4, padding='same'),
    'reflect':
    dict(in_channels=4, out_channels=5, kernel_size=3, padding=1, padding_mode='reflect'),
    'circular':
    dict(in_channels=4, out_channels=5, kernel_size=3, padding=2, padding_mode='circular'),
    'nonsquare': dict(in_channels=4, out_channels=6, kernel_size=(3, 5), padding=(1, 2)),
    'nobias': dict(in_channels=4, out_channels=6, kernel_size=3, bias=False),
}


def reference_weight(W, A, B, s, mode):
    dW = s * (B @ A).reshape(W.shape)
    return {'taylor': W + W * dW, 'exp': W * torch.exp(dW), 'lora': W + dW}[mode]


def reference_conv(conv, x, weight):
    if conv.padding_mode != 'zeros':
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    else:
        padding = conv.padding
    return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


def randomize(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g) * 0.3)
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.3)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('case', sorted(CONVS))
def test_conv_matches_reference(case, mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(**CONVS[case]).double()
    layer = LieRAConv2d.from_module(conv, rank=3, alpha=4.0, mode=mode)
    x = torch.randn(2, conv.in_channels, 11, 12, dtype=torch.float64)
    # step 0: exactly the plain layer
    assert torch.equal(layer(x), conv(x))
    randomize(layer)
    W = reference_weight(conv.weight, layer.lora_A, layer.lora_B, 4.0 / 3, mode)
    expected = reference_conv(conv, x, W)
    assert not torch.allclose(expected, conv(x))
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.merged_weight(), W, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('mode', MODES)
def test_linear_matches_reference(mode):
    torch.manual_seed(0)
    lin = nn.Linear(7, 5).double()
    layer = LieRALinear.from_module(lin, rank=2, mode=mode)
    assert layer.alpha == 4 and layer.scaling == 2.0
    x = torch.randn(3, 4, 7, dtype=torch.float64)
    assert torch.equal(layer(x), lin(x))
    randomize(layer)
    W = reference_weight(lin.weight, layer.lora_A, layer.lora_B, 2.0, mode)
    torch.testing.assert_close(layer(x), F.linear(x, W, lin.bias), rtol=1e-10, atol=1e-10)


def reference_op(layer, x, weight, bias):
    """The plain layer's op on x with ``weight`` (F.conv2d / F.linear, padding modes as torch)."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    if layer.padding_mode != 'zeros':
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
        padding = 0
    else:
        padding = layer.padding
    return F.conv2d(x, weight, bias, layer.stride, padding, layer.dilation, layer.groups)


def adapted_case(case, mode):
    """(LieRA layer with random non-zero A and B, float64 input) for a CONVS case or linear."""
    torch.manual_seed(0)
    if case.startswith('linear'):
        layer = LieRALinear.from_module(nn.Linear(7, 5).double(), rank=2, alpha=3.0, mode=mode)
        x = torch.randn((3, 7) if case == 'linear2d' else (2, 3, 7), dtype=torch.float64)
    else:
        layer = LieRAConv2d.from_module(
            nn.Conv2d(**CONVS[case]).double(), rank=3, alpha=4.0, mode=mode)
        x = torch.randn(2, layer.in_channels, 11, 12, dtype=torch.float64)
    randomize(layer)
    return layer, x


# what trains: 'factors' (W and bias frozen: the recompute-in-backward op training takes),
# 'factors+bias' (a `trainable=['bias']` policy), 'all' (W trains too: the autograd path)
TRAINS = ['factors', 'factors+bias', 'all']


@pytest.mark.parametrize('trains', TRAINS)
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('case', sorted(CONVS) + ['linear2d', 'linear3d'])
def test_output_and_gradients_match_reference(case, mode, trains):
    """Output and the gradients of A, B, the input (and bias / W where they train) against
    autograd through the formulas, with random non-zero factors and a random upstream grad."""
    layer, x = adapted_case(case, mode)
    has_bias = layer.bias is not None
    layer.weight.requires_grad_(trains == 'all')
    if has_bias:
        layer.bias.requires_grad_(trains != 'factors')
    ref = {'A': layer.lora_A, 'B': layer.lora_B, 'x': x, 'W': layer.weight}
    if has_bias:
        ref['bias'] = layer.bias
    ref = {
        k: v.detach().clone().requires_grad_(k in ('A', 'B', 'x') or v.requires_grad)
        for k, v in ref.items()
    }
    W = reference_weight(ref['W'], ref['A'], ref['B'], layer.scaling, mode)
    expected = reference_op(layer, ref['x'], W, ref.get('bias'))
    xl = x.clone().requires_grad_()
    out = layer(xl)
    assert any('LieRAOp' in f for f in _grad_fns(out)) == (trains != 'all')
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(expected)
    expected.backward(g)
    out.backward(g)
    got = {'A': layer.lora_A.grad, 'B': layer.lora_B.grad, 'x': xl.grad, 'W': layer.weight.grad}
    if has_bias:
        got['bias'] = layer.bias.grad
    for k, t in ref.items():
        if t.requires_grad:
            assert got[k] is not None, f'no gradient for {k}'
            torch.testing.assert_close(got[k], t.grad, rtol=1e-9, atol=1e-10, msg=k)
        else:
            assert got[k] is None, k


def test_factor_shapes_and_counts():
    C, r = 16, 4
    dw = LieRAConv2d(C, C, 7, padding=3, groups=C, rank=r)
    assert dw.lora_A.shape == (r * 7, C * 7) and dw.lora_B.shape == (7, r * 7)
    assert dw.num_adapter_params() == 49 * r * C + 49 * r
    g = LieRAConv2d(6, 9, (3, 5), groups=3, rank=2)
    assert g.lora_A.shape == (2 * 3, 6 * 5) and g.lora_B.shape == (9 // 3 * 3, 2 * 3)
    lin = LieRALinear(10, 20, rank=r)
    assert lin.lora_A.shape == (r, 10) and lin.lora_B.shape == (20, r)
    assert lin.num_adapter_params() == r * 30


def test_init_is_kaiming_a_and_zero_b():
    layer = LieRALinear(64, 32, rank=8)
    assert torch.count_nonzero(layer.lora_B) == 0
    bound = 1 / math.sqrt(64)  # kaiming_uniform(a=sqrt(5)) bound for fan_in 64
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.std() > bound / 3


@pytest.mark.parametrize('mode', MODES)
def test_gradcheck_factors(mode):
    torch.manual_seed(0)
    conv = LieRAConv2d(4, 4, 3, padding=1, groups=2, rank=2, mode=mode).double()
    lin = LieRALinear(5, 3, rank=2, mode=mode).double()
    for layer, x in ((conv, torch.randn(1, 4, 5, 5, dtype=torch.float64)),
                     (lin, torch.randn(2, 5, dtype=torch.float64))):
        randomize(layer, seed=1)
        layer.weight.requires_grad_(False)
        A0, B0 = layer.lora_A.detach().clone(), layer.lora_B.detach().clone()

        def f(A, B):
            with torch.no_grad():
                layer.lora_A.copy_(A0)
                layer.lora_B.copy_(B0)
            return torch.func.functional_call(layer, {'lora_A': A, 'lora_B': B}, (x, ))

        assert torch.autograd.gradcheck(f,
                                        (A0.clone().requires_grad_(), B0.clone().requires_grad_()))


@pytest.mark.parametrize('mode', MODES)
def test_dropout_path_is_base_plus_update_on_dropped_input(mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1).double()
    layer = LieRAConv2d.from_module(conv, rank=2, mode=mode, dropout=0.5)
    randomize(layer)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    xd = F.dropout(x, 0.5, True)
    W = reference_weight(conv.weight, layer.lora_A, layer.lora_B, layer.scaling, mode)
    expected = conv(x) + F.conv2d(xd, W - conv.weight, None, padding=1)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    layer.eval()  # eval: one op with W'
    torch.testing.assert_close(layer(x), F.conv2d(x, W, conv.bias, padding=1))


@pytest.mark.parametrize('mode', MODES)
def test_merge_unmerge_bit_exact(mode):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 4, stride=4), nn.Conv2d(8, 8, 7, padding=3, groups=8), nn.Flatten(),
        nn.Linear(8 * 16, 5))
    inject_adapters(model, rank=4, mode=mode)
    for i, layer in enumerate(mmliera.adapter_layers(model).values()):
        randomize(layer, seed=i)
    originals = [m.weight.detach().clone() for m in model if hasattr(m, 'weight')]
    x = torch.randn(2, 3, 16, 16)
    y = model(x)
    assert merge_adapters(model) == 3
    assert all(m.merged for m in mmliera.adapter_layers(model).values())
    with torch.no_grad():
        torch.testing.assert_close(model(x), y, rtol=1e-6, atol=1e-6)
    assert unmerge_adapters(model) == 3
    after = [m.weight.detach() for m in model if hasattr(m, 'weight')]
    assert all(torch.equal(a, b) for a, b in zip(originals, after))
    assert torch.equal(model(x), y)


def test_merged_forward_is_plain_op_and_training_it_raises():
    layer = LieRAConv2d(4, 4, 3, padding=1, rank=2)
    randomize(layer)
    layer.merge()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, layer.bias, padding=1))
    with pytest.raises(RuntimeError, match='merged LieRA layer.*unmerge'):
        layer(x).sum().backward()
    layer.unmerge()
    layer(x).sum().backward()
    assert layer.lora_B.grad is not None


def test_merge_non_finite_raises_and_leaves_layer():
    layer = LieRALinear(4, 4, rank=2, mode='exp')
    with torch.no_grad():
        layer.lora_A.fill_(100.0)
        layer.lora_B.fill_(100.0)
    w = layer.weight.detach().clone()
    with pytest.raises(ValueError, match='non-finite'):
        layer.merge()
    assert not layer.merged and torch.equal(layer.weight, w)


def test_merge_adapters_rolls_back_on_failure():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    inject_adapters(model, rank=2, mode='exp')
    with torch.no_grad():
        model[1].lora_A.fill_(100.0)
        model[1].lora_B.fill_(100.0)
    with pytest.raises(ValueError, match='1: merged weight has non-finite'):
        merge_adapters(model)
    assert not model[0].merged and not model[1].merged


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_weights(dtype):
    torch.manual_seed(0)
    lin = nn.Linear(16, 8)
    layer = LieRALinear.from_module(lin, rank=4, mode='exp')
    randomize(layer)
    W32 = layer.merged_weight().detach()
    layer.to(dtype)
    Wh = layer.merged_weight()
    assert Wh.dtype == dtype and layer.delta_weight().dtype == torch.float32
    torch.testing.assert_close(Wh.float(), W32, rtol=1e-2, atol=1e-2)
    # the delta itself is exact in float32: the result equals the fp32 formula on fp16 inputs
    ref = reference_weight(layer.weight.float(), layer.lora_A.float(), layer.lora_B.float(),
                           layer.scaling, 'exp').to(dtype)
    assert torch.equal(Wh, ref)


def _saved_tensors(layer, x):
    """Shapes of the tensors autograd saves for backward in ``layer(x)``, beyond the layer's
    parameters and x themselves (each storage counted once)."""
    seen = {p.data_ptr() for p in layer.parameters()} | {x.data_ptr()}
    saved = []

    def pack(t):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            saved.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    return out, saved


def _grad_fns(out):
    """Names of every autograd node behind ``out``."""
    names, todo = set(), [out.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and type(fn).__name__ not in names:
            names.add(type(fn).__name__)
            todo += [f for f, _ in fn.next_functions]
    return names


def test_exp_keeps_only_w_prime_where_w_prime_is_kept():
    """Where W' is kept for backward (lean path off: autocast, DoRA, PiSSA), exp forms it with
    ``_ExpHadamard``, which saves W' itself (the conv keeps it anyway): one W-sized tensor, as
    Taylor. A plain ``W * exp(ΔW)`` would keep exp(ΔW) as well (two)."""
    x = torch.randn(2, 64, 16, 16)
    w_sized = {}
    for mode in MODES:
        torch.manual_seed(0)
        layer = LieRAConv2d(64, 64, 7, padding=3, groups=64, rank=8, mode=mode)
        layer.weight.requires_grad_(False)
        layer.lean_backward = False
        out, saved = _saved_tensors(layer, x)
        fns = _grad_fns(out)
        assert not any('LieRAOp' in f for f in fns), fns
        assert any('ExpHadamard' in f for f in fns) == (mode == 'exp'), fns
        w_sized[mode] = sum(s == tuple(layer.weight.shape) for s in saved)
    assert w_sized == dict(taylor=1, exp=1, lora=1), w_sized


@pytest.mark.parametrize('mode', MODES)
def test_lean_path_keeps_no_w_sized_tensor(mode):
    """Training the factors of a frozen W: nothing W-sized (W', ΔW) is saved for backward, only
    x, W, A, B, which exist anyway."""
    torch.manual_seed(0)
    x = torch.randn(2, 64, 16, 16)
    layer = LieRAConv2d(64, 64, 7, padding=3, groups=64, rank=8, mode=mode)
    layer.weight.requires_grad_(False)
    out, saved = _saved_tensors(layer, x)
    assert any('LieRAOp' in f for f in _grad_fns(out))
    assert not any(s == tuple(layer.weight.shape) for s in saved), saved
    assert sum(torch.Size(s).numel() for s in saved) < layer.weight.numel() // 4, saved


def test_state_dict_of_plain_layer_loads():
    conv = nn.Conv2d(4, 8, 3)
    layer = LieRAConv2d(4, 8, 3, rank=2)
    res = layer.load_state_dict(conv.state_dict(), strict=False)
    assert sorted(res.missing_keys) == ['lora_A', 'lora_B'] and not res.unexpected_keys
    assert torch.equal(layer.weight, conv.weight)
    assert set(layer.state_dict()) == {'weight', 'bias', 'lora_A', 'lora_B'}


def test_merge_twice_and_unmerge_unmerged_warn_and_change_nothing():
    layer = LieRAConv2d(4, 4, 3, padding=1, rank=2, name='blk.conv')
    randomize(layer)
    w0 = layer.weight.detach().clone()
    with pytest.warns(UserWarning, match='blk.conv: not merged; nothing to do'):
        layer.unmerge()
    assert not layer.merged and torch.equal(layer.weight, w0)
    layer.merge()
    merged = layer.weight.detach().clone()
    assert not torch.equal(merged, w0)
    with pytest.warns(UserWarning, match='blk.conv: already merged; nothing to do'):
        layer.merge()
    assert layer.merged and torch.equal(layer.weight, merged)  # W' not applied twice
    layer.unmerge()
    assert torch.equal(layer.weight, w0)


def test_model_wide_exact_zeros_warning():
    from mmliera.models.peft import warn_exact_zeros
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 4), nn.Linear(4, 4))
    with torch.no_grad():
        model[0].weight[0] = 0  # 27 zeros
        model[1].weight[:, 0] = 0  # 4 zeros
        model[2].weight[0, 0] = 0  # 1 zero, but mode 'lora' can move it
    inject_adapters(
        model, rank=2, targets=['0', '1', dict(pattern='2', mode='lora')], check_zeros=False)
    with pytest.warns(UserWarning) as rec:
        assert warn_exact_zeros(model) == 31
    assert len(rec) == 1
    assert str(rec[0].message).startswith(
        '31 weights in 2 LieRA layers are exactly 0 and a multiplicative update cannot move '
        'them: 0 (27), 1 (4)')
    with torch.no_grad():
        model[0].weight[0] = 1
        model[1].weight[:, 0] = 1
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert warn_exact_zeros(model) == 0
