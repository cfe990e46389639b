"""The memory-lean LieRA op: y = op(x, W') with W' rebuilt in backward instead of stored.

Used by the layers when only the factors train (the common fine-tuning case); the formulas come
from :mod:`.formulas`, so forward, merge and export form the same W'.
"""
import torch

from .formulas import compute_dtype, grad_delta_, updated_weight


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
            w = updated_weight(weight, lora_A, lora_B, scaling, mode, inplace=True)
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
            w = updated_weight(weight, lora_A, lora_B, ctx.scaling, ctx.mode, inplace=True)
            ct = compute_dtype(weight.dtype)  # W' again, not stored
            w_op = w if ctx.amp is None else w.to(ctx.amp)
            if ctx.mode != 'exp':
                w = None  # only exp's dL/dΔW needs W' (in fp32): free it early otherwise
            grad_x, grad_w, grad_bias = _op_backward(ctx.op, grad_y.to(x.dtype), x, w_op, need_x,
                                                     need_A or need_B, need_b and ctx.has_bias)
            del w_op
            grad_A = grad_B = None
            if grad_w is not None:
                w_exp = None if w is None else w.to(ct)
                g = grad_delta_(grad_w.to(ct), weight.to(ct), w_exp, ctx.mode)
                g = g.reshape(lora_B.shape[0], lora_A.shape[1])
                a, b = lora_A.to(g.dtype), lora_B.to(g.dtype)
                # s·g Aᵀ and s·Bᵀ g, each one addmm (beta=0: its first argument, a tensor of
                # the result's shape, is not read)
                if need_B:
                    grad_B = torch.addmm(b, g, a.t(), beta=0, alpha=ctx.scaling)
                    grad_B = grad_B.to(lora_B.dtype)
                if need_A:
                    grad_A = torch.addmm(a, b.t(), g, beta=0, alpha=ctx.scaling)
                    grad_A = grad_A.to(lora_A.dtype)
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
    return torch.ops.aten.convolution_backward(grad_y, x, w, [w.shape[0]] if need_b else None,
                                               stride, padding, dilation, False, [0, 0], groups,
                                               [need_x, need_w, need_b])


def lie_op(x, weight, bias, lora_A, lora_B, scaling, mode, op):
    """``op(x, W')`` with the memory-lean backward of :class:`_LieRAOp`."""
    return _LieRAOp.apply(x, weight, bias, lora_A, lora_B, scaling, mode, op)
