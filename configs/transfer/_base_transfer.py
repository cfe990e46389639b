# The embedded transfer task (issue: evidence that LieRA pays off). Every method of the study
# starts from the same backbone: the demo's ConvNeXt-V2-atto pre-trained on the 'pretrain' split
# of the demo's shapes (made by PretrainBackboneHook when missing), and adapts it to a shifted
# target (mmliera/datasets/transfer_coco.py: new classes, striped textures instead of class
# colours, clutter and distractors, smaller objects, colour casts). Same slim Mask R-CNN, schedule,
# optimizer and learning rate for every method; only the backbone's trainable part differs.
#   python tools/compare_methods.py configs/transfer/*.py --seeds 0 1 2 --work-dir work_dirs/transfer_study
_base_ = ['../demo/_base_slim_maskrcnn_synthetic.py']

runner_type = 'LieRARunner'
data_root = '{{$MMLIERA_TRANSFER_DATA:{{ fileDirname }}/../../data/transfer_coco/}}'
synthetic = dict(image_size={{_base_.image_size}})  # splits train=128, test=64 (defaults)
pretrained = '{{ fileDirname }}/../../work_dirs/demo_pretrain/convnext-v2-atto_synthetic.pth'
pretrain_config = '{{ fileDirname }}/../demo/full_maskrcnn_convnextv2-atto_synthetic-pretrain.py'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

train_dataloader = dict(
    dataset=dict(type='TransferCocoDataset', data_root=data_root, synthetic=synthetic,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/')))
test_dataloader = dict(
    dataset=dict(type='TransferCocoDataset', data_root=data_root, synthetic=synthetic,
                 ann_file='annotations/instances_test.json', data_prefix=dict(img='test/')))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')
# no validation during training: the study evaluates the last checkpoint with tools/test.py
val_dataloader = None
val_evaluator = None
val_cfg = None

# The schedule and the learning-rate rule, fixed before any method was compared: the demo's
# AdamW at lr 1e-3 (weight decay 0.05, warm-up then cosine) for every method, 160 iterations
# of batch 4 (5 epochs of the 128 training images).
max_iters = 160
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min_ratio=0.05),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
custom_hooks = [
    dict(type='LieRAFreezeHook'),
    dict(type='PretrainBackboneHook', config=pretrain_config, checkpoint=pretrained),
]
