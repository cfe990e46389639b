"""The lean (recompute-in-backward) path under autocast: same gradients as fp32 within bf16 /
fp16 rounding, the op in the autocast dtype, and no W-sized tensor saved for backward."""
import pytest
import torch
import torch.nn as nn

from mmliera import LieRAConv2d, LieRALinear
from mmliera.models.peft.formulas import MODES

LAYERS = {  # name -> (layer factory, input shape); activations never W-sized
    'dense3x3': (lambda mode: LieRAConv2d(32, 48, 3, padding=1, rank=4, mode=mode), (2, 32, 9, 9)),
    'depthwise7x7': (lambda mode: LieRAConv2d(64, 64, 7, padding=3, groups=64, rank=4,
                                              mode=mode), (2, 64, 10, 10)),
    'linear': (lambda mode: LieRALinear(96, 80, rank=4, mode=mode), (2, 5, 96)),
}
AMP = [torch.bfloat16, torch.float16]


def build(name, mode, seed=0):
    factory, shape = LAYERS[name]
    torch.manual_seed(seed)
    layer = factory(mode)
    layer.weight.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a trained-looking adapter: B != 0, so every gradient is non-zero
        layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g) * 0.1)
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)
    x = torch.randn(shape, generator=g).requires_grad_()
    return layer, x


def step(layer, x, amp=None):
    """Output, grads of (A, B, bias, x), the autograd node names, and the shapes of saved
    tensors that are new memory (not a parameter, not x)."""
    layer.zero_grad(set_to_none=True)
    x.grad = None
    seen = {p.data_ptr() for p in layer.parameters()} | {x.data_ptr()}
    saved = []

    def pack(t):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast('cpu', dtype=amp or torch.bfloat16, enabled=amp is not None):
        out = layer(x)
    g_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    out.backward(g_out.to(out.dtype))
    fns = set()
    todo = [out.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None:
            fns.add(type(fn).__name__)
            todo += [f for f, _ in fn.next_functions]
    grads = [layer.lora_A.grad, layer.lora_B.grad, layer.bias.grad, x.grad]
    return out, grads, fns, saved


def rel_err(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize('amp', AMP, ids=['bf16', 'fp16'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', sorted(LAYERS))
def test_lean_path_under_autocast_matches_fp32(name, mode, amp):
    layer, x = build(name, mode)
    out32, grads32, fns32, _ = step(layer, x)
    out, grads, fns, saved = step(layer, x, amp)
    assert any('LieRAOp' in f for f in fns32) and any('LieRAOp' in f for f in fns), fns
    # the op ran in the autocast dtype, as autocast's own conv / linear would
    assert out.dtype == amp
    # factor grads in the parameters' dtype (fp32), within a few percent of the fp32 path
    for what, g, g32 in zip(['A', 'B', 'bias', 'x'], grads, grads32):
        assert g.dtype == torch.float32, what
        assert rel_err(g, g32) < 0.03, (what, rel_err(g, g32))
    assert rel_err(out, out32) < 0.03
    # nothing W-sized (W' or ΔW, any dtype) is kept for backward; the cast input is
    w_numel = layer.weight.numel()
    assert not any(t.numel() == w_numel for t in saved), [(t.shape, t.dtype) for t in saved]
    assert any(t.shape == x.shape and t.dtype == amp for t in saved)


@pytest.mark.parametrize('mode', MODES)
def test_plain_path_under_autocast_keeps_a_copy_of_w_prime(mode):
    """The control for the check above: with the lean path off, autocast's op keeps a
    bf16 W' (one W-sized tensor per layer) and the gradients still agree."""
    layer, x = build('depthwise7x7', mode)
    _, grads_lean, _, _ = step(layer, x, torch.bfloat16)
    layer.lean_backward = False
    _, grads, fns, saved = step(layer, x, torch.bfloat16)
    assert not any('LieRAOp' in f for f in fns)
    assert any(t.numel() == layer.weight.numel() and t.dtype == torch.bfloat16 for t in saved)
    for g, g_lean in zip(grads, grads_lean):
        assert rel_err(g_lean, g) < 0.03


def test_autocast_with_padding_modes_and_no_bias():
    """Reflect padding (padded before the op) and a bias-free conv take the lean path too."""
    torch.manual_seed(0)
    layer = LieRAConv2d(8, 8, 3, padding=1, padding_mode='reflect', bias=False, rank=2)
    layer.weight.requires_grad_(False)
    nn.init.normal_(layer.lora_B, std=0.1)
    x = torch.randn(1, 8, 6, 6)
    ref = layer(x)
    ref.float().pow(2).sum().backward()
    g32 = layer.lora_A.grad.clone()
    layer.lora_A.grad = None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) < 0.03
    out.float().pow(2).sum().backward()
    assert rel_err(layer.lora_A.grad, g32) < 0.03


def test_float64_is_left_alone_by_autocast():
    """Autocast does not cast float64; neither does the lean path (exact gradients)."""
    layer, x = build('dense3x3', 'taylor')
    layer.double()
    x = x.detach().double().requires_grad_()
    out64, grads64, _, _ = step(layer, x)
    out, grads, fns, _ = step(layer, x, torch.bfloat16)
    assert out.dtype == torch.float64 and torch.equal(out, out64)
    assert all(torch.equal(g, g64) for g, g64 in zip(grads, grads64))
