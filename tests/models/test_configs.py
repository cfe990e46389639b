"""Every config in configs/ loads and builds its model (no data, no checkpoint download)."""
import glob
import os
import re

import pytest
from helpers import ROOT, check_config_builds, tool_output
from mmengine.config import Config

# configs/vtab1k: the LieRA ranks are built by test_classification.py's count test and every
# one is parsed there; PiSSA's run an SVD per adapted layer of a ConvNeXt-V2-B at build (as
# pissa_liera_maskrcnn_convnextv2.py here, ~20 s each); the same model at another rank or mode
# adds nothing. Built here: one LoRA, DoRA +- LieRA and full fine-tuning.
# configs/pissa_liera_maskrcnn_convnextv2.py is built (and its count checked) by
# test_dora_pissa.py's count test through tools/analysis_tools/count_params.py.
VTAB_BUILT = ('lora_r16', 'dora_r16', 'dora_liera_r16', 'full')
BUILT_ELSEWHERE = ('pissa_liera_maskrcnn_convnextv2.py', )
CONFIGS = sorted(
    p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if (os.path.basename(os.path.dirname(p)) != 'vtab1k' or os.path.basename(p).split('_convnextv2')
        [0] in VTAB_BUILT) and os.path.basename(p) not in BUILT_ELSEWHERE)


def _param(path):
    # PiSSA's base-size configs run an SVD per adapted layer at build (~15 s here)
    slow = 'pissa' in os.path.basename(path) and 'convnextv2.py' in path
    return pytest.param(path, id=os.path.relpath(path, ROOT), marks=[pytest.mark.slow] * slow)


@pytest.mark.parametrize('path', [_param(p) for p in CONFIGS])
def test_config_builds(path):
    check_config_builds(path)


def test_paper_config_settings():
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py'))
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.use_grn, bb.layer_scale_init_value) == ('LieRAConvNeXt', 'base',
                                                                         True, 0.)
    assert bb.adapter == dict(mode='taylor', rank=16, alpha=None, dropout=0.0, targets=None)
    assert bb.init_cfg.checkpoint.startswith('https://download.openmmlab.com/mmclassification/'
                                             'v0/convnext-v2/convnext-v2-base_3rdparty-fcmae')
    assert cfg.optim_wrapper.optimizer == dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert cfg.auto_scale_lr.base_batch_size == 32 and cfg.train_cfg.max_epochs == 12
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'


@pytest.mark.parametrize('name,rank,total', [('liera_maskrcnn_convnextv2.py', 16, 17_271_104),
                                             ('liera_maskrcnn_convnextv2_r32.py', 32, 34_542_208),
                                             ('lora_maskrcnn_convnextv2_r32.py', 32, 34_542_208)])
def test_count_tool_prints_paper_counts(name, rank, total):
    out = tool_output('count_params', os.path.join(ROOT, 'configs', name))
    assert re.search(rf'^total\s+112\s+{total:,}$', out, re.M), out
    for kind in ('stem', 'downsample', 'depthwise', 'pointwise'):
        assert re.search(rf'^{kind}\s+\d+\s+[\d,]+$', out, re.M)
    assert f"'rank': {rank}" in out
    assert re.search(rf'^backbone\s+{total:,}\s+87,694,592\s+{total:,}\s+adapted$', out, re.M), out


def test_count_tool_sizes_match_the_tensors():
    from helpers import DEMO

    from mmliera.apis.model import build_model_from_config
    from mmliera.engine.hooks.freeze_hook import freeze_hooks_of
    out = tool_output('count_params', DEMO, '--sizes')
    adapter = re.search(r'^adapter-only \(\.safetensors\)\s+([\d.]+) MB$', out, re.M)
    full = re.search(r'^full state dict \(\.pth\)\s+([\d.]+) MB  \(([\d.]+)x\)$', out, re.M)
    moments = re.search(r'^full \+ AdamW moments \(mmengine ckpt\)\s+([\d.]+) MB  \(([\d.]+)x\)$',
                        out, re.M)
    assert adapter and full and moments, out
    a, f, m = float(adapter[1]), float(full[1]), float(moments[1])
    assert float(full[2]) == pytest.approx(f / a, abs=0.06)
    assert float(moments[2]) == pytest.approx(m / a, abs=0.06)
    # the figures are the tensors' bytes (float32) plus small headers
    cfg, model = build_model_from_config(DEMO)
    for hook in freeze_hooks_of(cfg.custom_hooks):
        hook.policy.apply(model)
    mb = 2**20
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) * 4 / mb
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / mb
    assert a == pytest.approx(trainable, rel=0.02, abs=0.05)
    assert f == pytest.approx(state, rel=0.02, abs=0.1)
    assert m == pytest.approx(f + 2 * trainable, abs=0.15)
