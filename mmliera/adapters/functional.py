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


def delta_weight(lora_A, lora_B, scaling, shape, dtype=torch.float32, lora_A0=None,
                 lora_B0=None):
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


def apply_update(weight, delta, mode, inplace=False):
    """W' from W and ΔW (ΔW in compute dtype); returns W's dtype.

    taylor: addcmul(W, W, ΔW) (one fused pass); exp: exp(ΔW) ⊙ W; lora: ΔW + W: the same
    kernels, so the same bits, whether formed out of place (autograd) or, with
    ``inplace=True``, in ΔW's own memory (no new W-sized allocation; only for a ΔW that
    nothing else uses and that needs no grad).
    """
    if mode not in MODES:
        raise ValueError(f'unknown LieRA mode {mode!r}; choose one of {MODES}')
    w = weight.to(delta.dtype)
    if inplace:
        if mode == 'taylor':
            out = torch.addcmul(w, w, delta, out=delta)
        elif mode == 'exp':
            out = delta.exp_().mul_(w)
        else:
            out = delta.add_(w)
    elif mode == 'taylor':
        out = torch.addcmul(w, w, delta)
    elif mode == 'exp':
        out = w * torch.exp(delta) if w.requires_grad else _ExpHadamard.apply(w, delta)
    else:
        out = delta + w
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


def _grad_delta_(grad_w, weight, w_new, mode):
    """dL/dΔW from dL/dW', in grad_w's memory: taylor ⊙ W, exp ⊙ W' (= dW'/dΔW), lora 1."""
    if mode == 'taylor':
        return grad_w.mul_(weight)
    if mode == 'exp':
        return grad_w.mul_(w_new)
    return grad_w


def _autocast_dtype(x, weight):
    """The dtype autocast would run the op in (None outside autocast): ``x``'s device's
    autocast dtype, unless x or W is float64 (which autocast leaves alone)."""
    dev = x.device.type
    try:  # torch >= 2.4
        enabled, dtype = torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev)
    except (TypeError, AttributeError):  # older torch: per-device functions, CPU and CUDA only
        cpu = dev == 'cpu'
        enabled = torch.is_autocast_cpu_enabled() if cpu else torch.is_autocast_enabled()
        dtype = torch.get_autocast_cpu_dtype() if cpu else torch.get_autocast_gpu_dtype()
    if not enabled or torch.float64 in (x.dtype, weight.dtype):
        return None
    return dtype


class _LieRAOp(torch.autograd.Function):
    """y = op(x, W'(A, B)) for a frozen W, recomputing W' in backward instead of storing it.

    Saves x, W (a parameter: no new memory), A and B; backward rebuilds ΔW and W' (one small
    matmul and one elementwise pass) and calls the op's own backward kernels. ``op`` is
    ``('conv', stride, padding, dilation, groups)`` (padding numeric; the layer pads other
    modes beforehand) or ``('linear',)``.

    Under autocast (fp16 / bf16): ΔW, W' and dL/dΔW are formed in fp32, the op and its backward
    run in the autocast dtype (x, W', bias cast as autocast casts them; x is saved in that
    dtype, as autocast's own conv saves it); still nothing W-sized is saved.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, lora_A, lora_B, scaling, mode, op):
        amp = _autocast_dtype(x, weight)
        ctx.x_dtype, ctx.bias_dtype = x.dtype, None if bias is None else bias.dtype
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            delta = delta_weight(lora_A, lora_B, scaling, weight.shape, weight.dtype)
            w = apply_update(weight, delta, mode, inplace=True)
            if amp is not None:
                x, w = x.to(amp), w.to(amp)
                bias = None if bias is None else bias.to(amp)
            y = _run_op(op, x, w, bias)
        ctx.save_for_backward(x, weight, lora_A, lora_B)
        ctx.scaling, ctx.mode, ctx.op, ctx.amp = scaling, mode, op, amp
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, lora_A, lora_B = ctx.saved_tensors
        need_x, _, need_b, need_A, need_B = ctx.needs_input_grad[:5]
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            delta = delta_weight(lora_A, lora_B, ctx.scaling, weight.shape, weight.dtype)
            ct = delta.dtype
            w = apply_update(weight, delta, ctx.mode, inplace=True)  # W' again, not stored
            w_op = w if ctx.amp is None else w.to(ctx.amp)
            if ctx.mode != 'exp':
                w = None  # only exp's dL/dΔW needs W' (in fp32): free it early otherwise
            grad_x, grad_w, grad_bias = _op_backward(ctx.op, grad_y.to(x.dtype), x, w_op,
                                                      need_x, need_A or need_B,
                                                      need_b and ctx.has_bias)
            del w_op
            grad_A = grad_B = None
            if grad_w is not None:
                w_exp = None if w is None else w.to(ct)
                g = _grad_delta_(grad_w.to(ct), weight.to(ct), w_exp, ctx.mode)
                g = g.reshape(lora_B.shape[0], lora_A.shape[1])
                a, b = lora_A.to(g.dtype), lora_B.to(g.dtype)
                # the scaling goes onto the small products, not onto the W-sized g
                if need_B:
                    grad_B = torch.mm(g, a.t()).mul_(ctx.scaling).to(lora_B.dtype)
                if need_A:
                    grad_A = torch.mm(b.t(), g).mul_(ctx.scaling).to(lora_A.dtype)
            if grad_x is not None:
                grad_x = grad_x.to(ctx.x_dtype)
            if grad_bias is not None:
                grad_bias = grad_bias.to(ctx.bias_dtype)
        return grad_x, None, grad_bias, grad_A, grad_B, None, None, None


def _run_op(op, x, w, bias):
    if op[0] == 'linear':
        return torch.nn.functional.linear(x, w, bias)
    _, stride, padding, dilation, groups = op
    return torch.nn.functional.conv2d(x, w, bias, stride, padding, dilation, groups)


def _op_backward(op, grad_y, x, w, need_x, need_w, need_b):
    if op[0] == 'linear':
        gy = grad_y.reshape(-1, grad_y.shape[-1])
        grad_x = torch.mm(gy, w).view(x.shape) if need_x else None
        grad_w = torch.mm(gy.t(), x.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = gy.sum(0) if need_b else None
        return grad_x, grad_w, grad_b
    _, stride, padding, dilation, groups = op
    return torch.ops.aten.convolution_backward(
        grad_y, x, w, [w.shape[0]] if need_b else None, stride, padding, dilation, False,
        [0, 0], groups, [need_x, need_w, need_b])


def lie_op(x, weight, bias, lora_A, lora_B, scaling, mode, op):
    """``op(x, W')`` with the memory-lean backward of :class:`_LieRAOp`."""
    return _LieRAOp.apply(x, weight, bias, lora_A, lora_B, scaling, mode, op)
