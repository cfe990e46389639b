"""LieRA on CUDA (skipped where torch sees no CUDA device): layers against the float64 CPU
reference in fp32 and under autocast, the lean path's memory, and a short Mask R-CNN run with
``--amp`` through the tools, then COCO evaluation."""
import math
import re
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import maps, run

from mmliera import LieRAConv2d, LieRALinear
from mmliera.models.peft.formulas import MODES

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
]

CASES = {  # name -> (plain layer, input shape)
    'dense3x3': (lambda: nn.Conv2d(32, 48, 3, padding=1), (2, 32, 20, 20)),
    'depthwise7x7': (lambda: nn.Conv2d(64, 64, 7, padding=3, groups=64), (2, 64, 20, 20)),
    'stem4x4': (lambda: nn.Conv2d(3, 40, 4, stride=4), (2, 3, 32, 32)),
    'linear': (lambda: nn.Linear(96, 80), (2, 7, 96)),
}
# fp32: TF32 may run convs / matmuls on CUDA, hence 1e-2 relative; autocast: fp16 / bf16
TOL = {None: 1e-2, torch.float16: 2e-2, torch.bfloat16: 4e-2}


def rel_err(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm())


def reference(layer, x, A, B, mode):
    """Output and grads (A, B, x, bias) by autograd through the formulas in float64 on CPU."""
    W = layer.weight.detach().double().cpu()
    bias = layer.bias.detach().double().cpu().requires_grad_()
    A, B = A.double().cpu().requires_grad_(), B.double().cpu().requires_grad_()
    x = x.double().cpu().requires_grad_()
    dW = layer.scaling * (B @ A).reshape(W.shape)
    Wp = {'taylor': W + W * dW, 'exp': W * torch.exp(dW), 'lora': W + dW}[mode]
    if isinstance(layer, nn.Linear):
        y = F.linear(x, Wp, bias)
    else:
        y = F.conv2d(x, Wp, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    return y, (A, B, x, bias)


@pytest.mark.parametrize('amp', [None, torch.float16, torch.bfloat16], ids=['fp32', 'fp16', 'bf16'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('case', sorted(CASES))
def test_layer_on_cuda_matches_float64_cpu_reference(case, mode, amp):
    make, shape = CASES[case]
    torch.manual_seed(0)
    plain = make()
    cls = LieRALinear if isinstance(plain, nn.Linear) else LieRAConv2d
    layer = cls.from_module(plain, rank=4, mode=mode).cuda()
    layer.weight.requires_grad_(False)
    with torch.no_grad():
        layer.lora_A.normal_(0, 0.1)
        layer.lora_B.normal_(0, 0.1)
    x = torch.randn(shape)
    g = torch.randn(reference(layer, x, layer.lora_A, layer.lora_B, mode)[0].shape)
    y_ref, leaves = reference(layer, x, layer.lora_A.detach(), layer.lora_B.detach(), mode)
    y_ref.backward(g.double())
    xc = x.cuda().requires_grad_()
    with torch.autocast('cuda', dtype=amp or torch.float16, enabled=amp is not None):
        y = layer(xc)
    assert y.dtype == (amp or torch.float32)
    y.backward(g.cuda().to(y.dtype))
    tol = TOL[amp]
    assert rel_err(y, y_ref) < tol
    for what, got, ref in zip(['A', 'B', 'x', 'bias'],
                              [layer.lora_A.grad, layer.lora_B.grad, xc.grad, layer.bias.grad],
                              leaves):
        assert got.dtype == torch.float32, what
        assert rel_err(got, ref.grad) < tol, (what, rel_err(got, ref.grad))


def _held_and_peak(step_forward):
    """(bytes held from forward to backward, peak bytes of forward + backward above the start)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    out = step_forward()
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated() - start
    out.float().sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - start
    del out
    return held, peak


@pytest.mark.parametrize('amp', [None, torch.bfloat16], ids=['fp32', 'bf16'])
@pytest.mark.parametrize('mode', MODES)
def test_lean_path_memory_on_cuda(mode, amp):
    """A LieRA conv step keeps no more than a frozen conv step between forward and backward
    (nothing W-sized; under autocast the frozen conv even keeps a bf16 copy of W), its peak
    adds at most a few transient W-sized tensors (W', dL/dW'), and the plain path (lean off)
    keeps W' alive in the op's dtype."""
    torch.manual_seed(0)
    conv = nn.Conv2d(512, 512, 3, padding=1).cuda()  # W: 9.4 MB in fp32
    conv.requires_grad_(False)
    layer = LieRAConv2d.from_module(conv, rank=8, mode=mode, check_zeros=False)
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
    nn.init.normal_(layer.lora_B, std=1e-3)
    x = torch.randn(2, 512, 16, 16, device='cuda', requires_grad=True)
    w_bytes = conv.weight.numel() * conv.weight.element_size()

    def autocast():
        return torch.autocast('cuda', dtype=amp or torch.float16, enabled=amp is not None)

    def frozen():
        with autocast():
            return conv(x)

    def lie():
        with autocast():
            return layer(x)

    for f in (frozen, lie):  # warm-up: cuDNN workspaces, autocast caches
        _held_and_peak(f)
    held_frozen, peak_frozen = _held_and_peak(frozen)
    held_lie, peak_lie = _held_and_peak(lie)
    assert held_lie - held_frozen < w_bytes // 8, (held_lie, held_frozen, w_bytes)
    assert peak_lie - peak_frozen <= 4 * w_bytes, (peak_lie, peak_frozen, w_bytes)
    layer.lean_backward = False
    _held_and_peak(lie)
    held_plain, _ = _held_and_peak(lie)
    w_prime_bytes = conv.weight.numel() * (2 if amp else 4)
    assert held_plain - held_lie >= w_prime_bytes, (held_plain, held_lie)


def test_mask_rcnn_demo_trains_with_amp_on_cuda_then_evaluates(tmp_path):
    """tools/train.py --amp (AmpOptimWrapper, fp16) on the tiny demo: every logged loss is
    finite and the loss falls; tools/test.py on CUDA (mmcv's CUDA RoIAlign / nms) gives the same
    COCO bbox / segm mAP as on the CPU (its CPU ops) for the same checkpoint."""
    from tiny_demo import tiny_demo_cfg
    cfg = tiny_demo_cfg(tmp_path, iters=40)
    work = tmp_path / 'work'
    out = run([sys.executable, 'tools/train.py', cfg, '--amp', '--work-dir', str(work)])
    dumped = (work / 'tiny_demo.py').read_text()  # the config the run used
    assert "type='AmpOptimWrapper'" in dumped and "loss_scale='dynamic'" in dumped
    losses = [float(v) for v in re.findall(r' loss: (\S+?)(?:\s|$)', out)]  # nan / inf too
    assert len(losses) >= 30 and all(math.isfinite(v) for v in losses), losses
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    ckpt = work / 'iter_40.pth'
    got = {}
    for device, env in (('cuda', None), ('cpu', {'CUDA_VISIBLE_DEVICES': ''})):
        test = run([
            sys.executable, 'tools/test.py', cfg,
            str(ckpt), '--work-dir',
            str(tmp_path / f'test_{device}')
        ],
                   env=env)
        got[device] = maps(test)
    for cuda_map, cpu_map in zip(got['cuda'], got['cpu']):
        assert abs(cuda_map - cpu_map) <= 0.02, got


def test_exact_resume_restores_random_states_that_the_checkpoint_put_on_the_gpu():
    """mmengine's resume maps every tensor of a checkpoint to the GPU: the saved generator
    states (CPU, CUDA, the loader's) come back as CUDA tensors and must still restore (found on
    the first GPU run: `RNG state must be a torch.ByteTensor`)."""
    from mmliera.engine.hooks.exact_resume_hook import get_rng_state, set_rng_state
    torch.manual_seed(3)
    torch.cuda.manual_seed_all(3)
    saved = get_rng_state()
    expected = (torch.rand(4), torch.rand(4, device='cuda'))
    on_gpu = dict(saved, torch=saved['torch'].cuda(), cuda=[s.cuda() for s in saved['cuda']])
    set_rng_state(on_gpu)
    got = (torch.rand(4), torch.rand(4, device='cuda'))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
