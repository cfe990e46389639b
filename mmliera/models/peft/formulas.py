"""The LieRA formulas, in one place: layers, the lean op, merge, export and benchmarks call these.

For a weight W and factors A, B with scaling s = alpha / rank:

    ΔW = s · (B @ A).view(W.shape)                     (the Lie-algebra element)
    taylor: W' = W + W ⊙ ΔW = W ⊙ (1 + ΔW)              (first-order exp, the paper's LieRA)
    exp:    W' = W ⊙ exp(ΔW)                            (the exact group exponential)
    lora:   W' = W + ΔW                                 (additive baseline, same factors)

and back (a merge that kept no copy of W): taylor W = W' / (1 + ΔW), exp W = W' ⊙ exp(−ΔW),
lora W = W' − ΔW (:func:`revert_update`; exact up to rounding, see there).

ΔW and W' are formed in at least float32 (``compute_dtype``) and W' is returned in W's dtype.
"""
from typing import Callable, NamedTuple

import torch


def compute_dtype(dtype):
    """float32 for half/bfloat16 weights, the weight's own dtype otherwise (e.g. float64)."""
    return torch.promote_types(dtype, torch.float32)


def delta_weight(lora_A, lora_B, scaling, shape, dtype=torch.float32, lora_A0=None, lora_B0=None):
    """ΔW = scaling · (B @ A).view(shape) in ``compute_dtype(dtype)``.

    Linear: A (r, in), B (out, r). Conv2d: A (r·kh, C_in·kw), B (C_out/groups·kh, r·kh), viewed
    row-major as (C_out, C_in/groups, kh, kw). The scaling is applied to the smaller factor.
    With PiSSA's frozen initial factors A0, B0: ΔW = scaling · (B @ A − B0 @ A0).
    """
    ct = compute_dtype(dtype)
    with torch.autocast(device_type=lora_A.device.type, enabled=False):
        a, b = lora_A.to(ct), lora_B.to(ct)
        scale_a = a.numel() <= b.numel()
        if scale_a:
            a = a * scaling
        else:
            b = b * scaling
        out = torch.mm(b, a)
        if lora_A0 is not None:
            a0, b0 = lora_A0.to(ct), lora_B0.to(ct)
            if scale_a:
                a0 = a0 * scaling
            else:
                b0 = b0 * scaling
            out = out - torch.mm(b0, a0)
        return out.view(shape)


def channel_norm(w):
    """‖W‖ per output channel (norm over every dim but 0), shaped to broadcast against W."""
    return w.reshape(w.shape[0], -1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))


def apply_dora(w_new, magnitude, dtype):
    """DoRA on the LieRA weight: m ⊙ W' / ‖W'‖ (the norm detached, as DoRA §4.3)."""
    ct = compute_dtype(dtype)
    norm = channel_norm(w_new.detach().to(ct))
    scale = magnitude.to(ct).view_as(norm) / norm
    return (w_new.to(ct) * scale).to(dtype)


class _ExpHadamard(torch.autograd.Function):
    """W' = W ⊙ exp(ΔW) for a frozen W; saves only W' (which the conv keeps anyway).

    dW'/dΔW = W', so backward needs nothing but the output: exp costs no more memory than
    Taylor (the paper's implementation pays +48%).
    """

    @staticmethod
    def forward(ctx, weight, delta):
        out = torch.exp(delta).mul_(weight)  # exp(ΔW) ⊙ W, as apply_update
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return None, grad * out


class Mode(NamedTuple):
    """One mode's formulas (W, ΔW in compute dtype; ``_`` variants write into ΔW / the grad)."""

    apply: Callable  # W' = f(W, ΔW), differentiable
    apply_: Callable  # W' in ΔW's memory (a ΔW nothing else uses, no grad)
    change: Callable  # W' − W
    grad_: Callable  # dL/dΔW from dL/dW' (in its memory), given W and W'
    revert_: Callable  # W from W' and ΔW, in ΔW's memory


def _exp_apply(w, d):
    return w * torch.exp(d) if w.requires_grad else _ExpHadamard.apply(w, d)


MODE_TABLE = {
    'taylor':
    Mode(
        apply=lambda w, d: torch.addcmul(w, w, d),
        apply_=lambda w, d: torch.addcmul(w, w, d, out=d),
        change=lambda w, d: w * d,
        grad_=lambda g, w, w_new: g.mul_(w),
        revert_=lambda w_new, d: torch.div(w_new, d.add_(1), out=d)),
    'exp':
    Mode(
        apply=_exp_apply,
        apply_=lambda w, d: d.exp_().mul_(w),
        change=lambda w, d: w * torch.expm1(d),
        grad_=lambda g, w, w_new: g.mul_(w_new),
        revert_=lambda w_new, d: d.neg_().exp_().mul_(w_new)),
    'lora':
    Mode(
        apply=lambda w, d: d + w,
        apply_=lambda w, d: d.add_(w),
        change=lambda w, d: d,
        grad_=lambda g, w, w_new: g,
        revert_=lambda w_new, d: torch.sub(w_new, d, out=d)),
}
MODES = tuple(MODE_TABLE)


def mode_of(mode):
    """The :class:`Mode` of a name; ValueError for an unknown one."""
    try:
        return MODE_TABLE[mode]
    except (KeyError, TypeError):
        raise ValueError(f'unknown LieRA mode {mode!r}; choose one of {MODES}') from None


def apply_update(weight, delta, mode, inplace=False):
    """W' from W and ΔW (ΔW in compute dtype); returns W's dtype.

    taylor: addcmul(W, W, ΔW) (one fused pass); exp: exp(ΔW) ⊙ W; lora: ΔW + W: the same
    kernels, so the same bits, whether formed out of place (autograd) or, with
    ``inplace=True``, in ΔW's own memory (no new W-sized allocation; only for a ΔW that
    nothing else uses and that needs no grad).
    """
    m = mode_of(mode)
    w = weight.to(delta.dtype)
    return (m.apply_ if inplace else m.apply)(w, delta).to(weight.dtype)


def updated_weight(weight,
                   lora_A,
                   lora_B,
                   scaling,
                   mode,
                   lora_A0=None,
                   lora_B0=None,
                   inplace=False):
    """W' straight from the factors, in W's dtype: what the layers' forward, the lean op and
    merge use (the same kernels, so the same bits, in every path).

    The scaling goes into the op that joins W and the factor product, so W' costs the fewest
    kernels: taylor ``mm`` + ``addcmul(W, W, BA, value=s)``, lora one ``addmm(W, B, A,
    alpha=s)``, exp as :func:`delta_weight` (the smaller factor scaled) + ``exp`` + ``mul``;
    PiSSA's ``B0 A0`` is one more ``addmm``. ``inplace``: taylor and exp form W' in the
    product's own memory (no grad; lora's addmm makes its one W-sized tensor either way).
    """
    ct = compute_dtype(weight.dtype)
    if mode == 'exp':
        delta = delta_weight(lora_A, lora_B, scaling, weight.shape, weight.dtype, lora_A0, lora_B0)
        return apply_update(weight, delta, mode, inplace=inplace)
    mode_of(mode)
    with torch.autocast(device_type=lora_A.device.type, enabled=False):
        a, b, w = lora_A.to(ct), lora_B.to(ct), weight.to(ct)
        a0, b0 = (None, None) if lora_A0 is None else (lora_A0.to(ct), lora_B0.to(ct))
        if mode == 'lora':
            out = torch.addmm(w.reshape(b.shape[0], a.shape[1]), b, a, alpha=scaling)
            if a0 is not None:
                out = torch.addmm(out, b0, a0, alpha=-scaling)
            return out.view(weight.shape).to(weight.dtype)
        prod = torch.mm(b, a)
        if a0 is not None:
            prod = torch.addmm(prod, b0, a0, alpha=-1)
        prod = prod.view(weight.shape)
        out = torch.addcmul(w, w, prod, value=scaling, out=prod if inplace else None)
        return out.to(weight.dtype)


def revert_update(w_new, delta, mode):
    """W from W' and ΔW (the inverse of :func:`apply_update`), formed in ΔW's memory; returns
    W' dtype. Exact up to rounding: exp and lora within a few ulp of W' (lora: of |W'|, so
    small weights next to a large ΔW lose relative precision); taylor divides by 1 + ΔW, so
    where 1 + ΔW is near 0 (a weight the update all but removed) W comes back imprecise."""
    return mode_of(mode).revert_(w_new.to(delta.dtype), delta).to(w_new.dtype)


def update_only(weight, delta, mode):
    """W' − W, formed directly (exp: W ⊙ expm1(ΔW)); returns W's dtype."""
    return mode_of(mode).change(weight.to(delta.dtype), delta).to(weight.dtype)


def grad_delta_(grad_w, weight, w_new, mode):
    """dL/dΔW from dL/dW', in grad_w's memory: taylor ⊙ W, exp ⊙ W' (= dW'/dΔW), lora 1."""
    return mode_of(mode).grad_(grad_w, weight, w_new)
