"""The LieRA formulas, in one place: layers, merge, export and benchmarks all call these.

For a weight W and factors A, B with scaling s = alpha / rank:

    ΔW = s · (B @ A).view(W.shape)                     (the Lie-algebra element)
    taylor: W' = W + W ⊙ ΔW = W ⊙ (1 + ΔW)              (first-order exp, the paper's LieRA)
    exp:    W' = W ⊙ exp(ΔW)                            (the exact group exponential)
    lora:   W' = W + ΔW                                 (additive baseline, same factors)

ΔW and W' are formed in at least float32 (``compute_dtype``) and W' is returned in W's dtype.
"""
import torch

MODES = ('taylor', 'exp', 'lora')


def compute_dtype(dtype):
    """float32 for half/bfloat16 weights, the weight's own dtype otherwise (e.g. float64)."""
    return torch.promote_types(dtype, torch.float32)


def delta_weight(lora_A, lora_B, scaling, shape, dtype=torch.float32):
    """ΔW = scaling · (B @ A).view(shape) in ``compute_dtype(dtype)``.

    Linear: A (r, in), B (out, r). Conv2d: A (r·kh, C_in·kw), B (C_out/groups·kh, r·kh), viewed
    row-major as (C_out, C_in/groups, kh, kw). The scaling is applied to the smaller factor.
    """
    ct = compute_dtype(dtype)
    with torch.autocast(device_type=lora_A.device.type, enabled=False):
        a, b = lora_A.to(ct), lora_B.to(ct)
        if a.numel() <= b.numel():
            a = a * scaling
        else:
            b = b * scaling
        return torch.mm(b, a).view(shape)


class _ExpHadamard(torch.autograd.Function):
    """W' = W ⊙ exp(ΔW) for a frozen W; saves only W' (which the conv keeps anyway).

    dW'/dΔW = W', so backward needs nothing but the output: exp costs no more memory than
    Taylor (the paper's implementation pays +48%).
    """

    @staticmethod
    def forward(ctx, weight, delta):
        out = torch.exp(delta).mul_(weight)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return None, grad * out


def apply_update(weight, delta, mode):
    """W' from W and ΔW (ΔW in compute dtype); returns W's dtype."""
    w = weight.to(delta.dtype)
    if mode == 'taylor':
        out = torch.addcmul(w, w, delta)
    elif mode == 'exp':
        if w.requires_grad:
            out = w * torch.exp(delta)
        else:
            out = _ExpHadamard.apply(w, delta)
    elif mode == 'lora':
        out = w + delta
    else:
        raise ValueError(f'unknown LieRA mode {mode!r}; choose one of {MODES}')
    return out.to(weight.dtype)


def update_only(weight, delta, mode):
    """W' − W, formed directly (exp: W ⊙ expm1(ΔW)); returns W's dtype."""
    w = weight.to(delta.dtype)
    if mode == 'taylor':
        out = w * delta
    elif mode == 'exp':
        out = w * torch.expm1(delta)
    elif mode == 'lora':
        out = delta
    else:
        raise ValueError(f'unknown LieRA mode {mode!r}; choose one of {MODES}')
    return out.to(weight.dtype)
