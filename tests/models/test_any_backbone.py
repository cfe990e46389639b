"""type='LieRA' on any registered backbone: names unchanged, plain checkpoints load, identity at
init, only adapter factors train, clear errors; R-50 and Swin-T configs train on the demo data."""
import os
import time

import numpy as np
import pytest
import torch
from helpers import ROOT, assert_adapters_trained
from mmdet.registry import MODELS
from mmengine.config import Config

from mmliera import adapter_layers

BACKBONES = {
    'resnet50':
    dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch'),
    'swin-t':
    dict(
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        out_indices=(0, 1, 2, 3)),
    'vit':
    dict(type='mmpretrain.VisionTransformer', arch='deit-tiny', img_size=64, patch_size=16),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_same_module_names_checkpoint_identity_and_freezing(name):
    torch.manual_seed(0)
    plain = MODELS.build(BACKBONES[name])
    plain.init_weights()
    adapted = MODELS.build(dict(type='LieRA', backbone=BACKBONES[name], adapter=dict(rank=4)))
    assert type(adapted) is type(plain)  # the same class: init_cfg, frozen_stages keep working
    extra = set(adapted.state_dict()) - set(plain.state_dict())
    assert extra and all(k.endswith(('.lora_A', '.lora_B')) for k in extra)
    assert set(plain.state_dict()) <= set(adapted.state_dict())
    res = adapted.load_state_dict(plain.state_dict(), strict=False)
    assert set(res.missing_keys) == extra and not res.unexpected_keys
    for n, p in adapted.named_parameters():
        assert p.requires_grad == n.endswith(('lora_A', 'lora_B')), n
    plain.eval()
    adapted.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs_a, outs_p = adapted(x), plain(x)
    for a, b in zip(outs_a, outs_p):
        a = a[0] if isinstance(a, (tuple, list)) else a
        b = b[0] if isinstance(b, (tuple, list)) else b
        assert torch.equal(a, b)
    # adapters really act: a non-zero B changes the output
    layer = next(iter(adapter_layers(adapted).values()))
    with torch.no_grad():
        layer.lora_B.normal_()
        out = adapted(x)[0]
    assert not torch.equal(out[0] if isinstance(out, (tuple, list)) else out,
                           outs_p[0][0] if isinstance(outs_p[0], (tuple, list)) else outs_p[0])


def test_frozen_stages_and_targets():
    bb = dict(BACKBONES['resnet50'], frozen_stages=1)
    m = MODELS.build(
        dict(type='LieRA', backbone=bb, adapter=dict(rank=2, targets=[r'layer\d\.\d+\.conv2'])))
    assert all(n.endswith('conv2') for n in m.liera_layers) and len(m.liera_layers) == 16
    assert not m.layer1[0].conv2.lora_A.requires_grad  # frozen stage: adapters frozen too
    assert m.layer2[0].conv2.lora_A.requires_grad
    m.train()
    assert not m.layer1[0].conv2.lora_A.requires_grad and not m.bn1.training  # norm_eval


def test_clear_errors():
    with pytest.raises(KeyError, match="backbone type 'ResNetX' is not registered"):
        MODELS.build(dict(type='LieRA', backbone=dict(type='ResNetX', depth=50)))
    with pytest.raises(ValueError, match="target 'nothing' matched no module of ResNet"):
        MODELS.build(
            dict(type='LieRA', backbone=BACKBONES['resnet50'], adapter=dict(targets=['nothing'])))
    with pytest.raises(TypeError, match='LieRA needs backbone=dict'):
        MODELS.build(dict(type='LieRA', backbone='ResNet'))


@pytest.mark.slow  # 12 iterations of two whole detectors
@pytest.mark.parametrize('config,channels', [('liera_maskrcnn_r50.py', [256, 512, 1024, 2048]),
                                             ('liera_maskrcnn_swin-t.py', [96, 192, 384, 768])])
def test_config_trains_on_demo_data_with_loss_falling(config, channels, tmp_path):
    from mmliera.cli.launch import build_runner
    src = Config.fromfile(os.path.join(ROOT, 'configs', config))
    cfg = Config.fromfile(
        os.path.join(ROOT, 'configs', 'demo', 'liera_maskrcnn_convnextv2-atto_synthetic.py'))
    backbone = src.model.backbone
    backbone.backbone.init_cfg = None  # no download here
    if backbone.backbone.type == 'ResNet':
        # random init zeroes every bottleneck's last BN gamma (zero_init_residual), which blocks
        # all gradient to the residual branches; pretrained weights have non-zero gammas
        backbone.backbone.zero_init_residual = False
    cfg.model.backbone = backbone
    cfg.model.neck.in_channels = channels
    cfg.custom_hooks = [dict(type='LieRAFreezeHook')]
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=12, val_interval=1000)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no test reads its mAP
    resize, = (t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Resize')
    resize.scale = (128, 128)  # the demo's 256 px images at half size: a quarter of the compute
    cfg.param_scheduler = []
    cfg.optim_wrapper.optimizer.lr = 5e-4
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'{config}_{time.time_ns()}'  # its own logger (see test_freeze_hook)
    runner = build_runner(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss')._log_history
    assert len(losses) == 12
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    assert type(runner.model.backbone).__name__ == backbone.backbone.type
    # the loss also falls with broken adapters (neck and heads train): check the adapters
    assert_adapters_trained(runner.model.backbone, torch.randn(1, 3, 128, 128))
