"""A tiny variant of the demo for fast tests: its data and "pretrained" backbone in a temp dir."""
import os

import torch
from helpers import DEMO, STUDY_CONFIGS, write_cfg

TRANSFER = os.path.join(STUDY_CONFIGS, 'transfer')


def write_random_backbone(path, arch='atto'):
    """An mmpretrain-format ConvNeXt-V2 checkpoint (random weights, seed 0) at ``path``;
    ``arch``: a name or dict(depths=..., channels=...)."""
    from mmpretrain.models import ConvNeXt
    torch.manual_seed(0)
    m = ConvNeXt(
        arch=arch,
        use_grn=True,
        layer_scale_init_value=0.,
        gap_before_final_norm=False,
        out_indices=[0, 1, 2, 3])
    torch.save(
        dict(meta=dict(), state_dict={
            f'backbone.{k}': v
            for k, v in m.state_dict().items()
        }), str(path))
    return str(path)


NO_VALIDATION = 'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'


def tiny_demo_cfg(tmp, iters=2, val_interval=1000, validate=True, size=256):
    """The demo config with 8 train / 4 val images under ``tmp/data`` (made on first use), the
    backbone from :func:`write_random_backbone` and ``iters`` iterations of batch 2; validation
    every ``val_interval`` and after the last iteration (mmengine's loop), none at all with
    ``validate=False`` (for runs whose mAP no test reads; the test split stays). ``size``: the
    images' side in pixels, generated and fed at that size (128: about a quarter of the
    compute of the demo's 256)."""
    pretrained = tmp / 'backbone.pth'
    if not pretrained.exists():
        write_random_backbone(pretrained)
    data = tmp / 'data'
    train_pipe = val_pipe = ''
    if size != 256:  # the demo's pipelines, resizing to ``size``
        train_pipe = f""",
                                     pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]"""
        val_pipe = f""",
                                   pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]"""
    return write_cfg(
        tmp / 'tiny_demo.py', DEMO, f"""
data_root = '{data}/'
synthetic = dict(image_size={size}, splits=dict(train=8, val=4))
model = dict(backbone=dict(init_cfg=dict(checkpoint='{pretrained}')))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, synthetic=synthetic{train_pipe}))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, synthetic=synthetic{val_pipe}))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters={iters}, val_interval={val_interval})
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=1))
custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='AdapterCheckpointHook', interval=-1)]
""" + ('' if validate else NO_VALIDATION))


def tiny_transfer_cfg(tmp, name, base, extra=''):
    """projects/liera_study/configs/transfer/<base>.py on 8 train / 4 val / 4 test images of 128
    px, 3 iterations
    (val after the 2nd and 3rd), its backbone from :func:`write_random_backbone`."""
    pretrained = tmp / 'backbone.pth'
    if not pretrained.exists():
        write_random_backbone(pretrained)
    data = tmp / 'data'
    return write_cfg(
        tmp / f'{name}.py', os.path.join(TRANSFER, base), f"""
data_root = '{data}/'
synthetic = dict(image_size=128, splits=dict(train=8, val=4, test=4))
model = dict(backbone=dict(init_cfg=dict(checkpoint='{pretrained}')))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, synthetic=synthetic))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, synthetic=synthetic))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root=data_root, synthetic=synthetic))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')
train_cfg = dict(max_iters=3, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=3), logger=dict(interval=1))
custom_hooks = [{'' if base == 'full.py' else "dict(type='LieRAFreezeHook'), "}
                dict(type='PretrainBackboneHook', config='unused.py', checkpoint='{pretrained}')]
""" + extra)
