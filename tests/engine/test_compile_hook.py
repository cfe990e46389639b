"""LieRACompileHook in real runs of the tiny demo through tools/train.py: training and
validation compiled, checkpoints with the plain keys, exact resume, and its config mistakes."""
import shutil

import pytest
import torch
from helpers import runner_output, write_cfg
from tiny_demo import tiny_demo_cfg

from mmliera.checkpoint.safe_load import safe_load

HOOKS = ("custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='LieRACompileHook', "
         "parts={parts}, backend='{backend}')]\n")


def _cfg(tmp, backend='aot_eager', parts="['backbone', 'neck']"):
    """The tiny demo at 128 px, 4 iterations, checkpoints and validation every 2."""
    base = tiny_demo_cfg(tmp, iters=4, val_interval=2, size=128)
    body = 'default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=-1))\n'
    if backend:
        body += HOOKS.format(parts=parts, backend=backend)
    return write_cfg(tmp / f'compiled_{backend}.py', base, body)


def _adapters(path):
    state = safe_load(str(path))['state_dict']
    return {k: v for k, v in state.items() if 'lora_' in k}


def _train(cfg, work, *extra):
    torch._dynamo.reset()  # a fresh process's compile, not this one's earlier graphs
    return runner_output('train', cfg, '--work-dir', str(work), *extra)


@pytest.mark.parametrize('backend', ['aot_eager', pytest.param('inductor', marks=pytest.mark.slow)])
def test_compiled_training_validates_checkpoints_and_resumes_exactly(tmp_path, backend):
    # the backbone's last stage (inductor: its last block); a cold compile of the whole
    # backbone takes minutes on 2 cores
    part = 'backbone.stages.3' + ('.1' if backend == 'inductor' else '')
    cfg = _cfg(tmp_path, backend, f"['{part}']")
    straight = tmp_path / 'straight'
    out = _train(cfg, straight)
    layers = 3 if backend == 'inductor' else 6  # dwconv, pwconv1, pwconv2 per block
    assert f'LieRACompileHook: compiled {part} ({layers} adapted layers)' in out
    assert out.count('bbox_mAP:') >= 2  # validation after iterations 2 and 4, compiled
    final = safe_load(str(straight / 'iter_4.pth'))['state_dict']
    assert not any('_orig_mod' in k or 'compiled' in k for k in final)

    # resume from iteration 2 in a fresh run: the same adapters at iteration 4
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(straight / 'iter_2.pth', resumed / 'iter_2.pth')
    (resumed / 'last_checkpoint').write_text(str(resumed / 'iter_2.pth'))
    out = _train(cfg, resumed, '--resume')
    assert 'resumed epoch: 0, iter: 2' in out or 'resumed' in out.lower()
    a, b = _adapters(straight / 'iter_4.pth'), _adapters(resumed / 'iter_4.pth')
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)

    if backend == 'inductor':
        return  # the comparison with eager: the layer tests (test_compile_parts.py)
    # the same run eagerly: the same checkpoint keys, the same training up to rounding (B
    # starts at 0, so ‖B‖ is how far training moved it)
    eager = tmp_path / 'eager'
    _train(_cfg(tmp_path, backend=None), eager)
    plain = safe_load(str(eager / 'iter_4.pth'))['state_dict']
    assert list(plain) == list(final)
    apart = [((final[k] - plain[k]).norm() / plain[k].norm()).item() for k in a
             if k.endswith('lora_B') and plain[k].norm() > 0]
    assert len(apart) > 10 and max(apart) < 0.05, max(apart)


def test_config_mistakes_are_one_error_line(tmp_path):
    cfg = _cfg(tmp_path, 'aot_eager', "['backbone', 'nek']")
    out = runner_output('train', cfg, '--work-dir', str(tmp_path / 'w'), expect_fail=True)
    assert "error: LieRACompileHook: the model (MaskRCNN) has no submodule 'nek'; its parts " \
        'are data_preprocessor, backbone, neck' in out, out[-2000:]
    assert 'Traceback' not in out
    bad = write_cfg(
        tmp_path / 'bad_kwarg.py', _cfg(tmp_path),
        "custom_hooks = [dict(type='LieRACompileHook', parts=['backbone'], fulgraph=True)]\n")
    out = runner_output('train', bad, '--work-dir', str(tmp_path / 'w2'), expect_fail=True)
    assert "LieRACompileHook: torch.compile takes no 'fulgraph'" in out and 'Traceback' not in out
