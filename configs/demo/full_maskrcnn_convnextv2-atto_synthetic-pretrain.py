# Stage 1 of the demo: full training of a plain ConvNeXt-V2-atto Mask R-CNN on the generated
# 'pretrain' split. Its backbone, exported in mmpretrain's format, is the "pretrained" backbone
# that the LieRA demo adapts on the separate 'train' split (PretrainBackboneHook runs this
# config automatically when that checkpoint is missing).
_base_ = ['./_base_slim_maskrcnn_synthetic.py']

runner_type = 'LieRARunner'
train_dataloader = dict(
    dataset=dict(ann_file='annotations/instances_pretrain.json',
                 data_prefix=dict(img='pretrain/')))
max_iters = 150
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, eta_min_ratio=0.05),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
