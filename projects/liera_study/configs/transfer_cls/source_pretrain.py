# The source task of the classification transfer study: a ConvNeXt-V2-atto trained from scratch
# to classify the demo's three shapes (square, disc, triangle) filled flat in random colours
# (projects/liera_study/liera_study/datasets/transfer_cls.py, task 'source'; 2,400 training images of 64 px, 800 iterations of batch 64). Its
# backbone is the study's starting point (projects/liera_study/results/transfer_cls_study/start_backbone.pth, made by
# PretrainBackboneHook from this config when missing, checksum pinned in _base_transfer_cls.py).
_base_ = ['./_base_transfer_cls.py']
data_root = '{{$MMLIERA_TRANSFER_CLS_SOURCE_DATA:{{ fileDirname }}/../../../../data/transfer_cls_source/}}'
synthetic = dict(_delete_=True, image_size=64, task='source', splits=dict(train=2400, val=240))
model = dict(
    backbone=dict(init_cfg=None), head=dict(num_classes=3), data_preprocessor=dict(num_classes=3))
# (the sampler the shipped backbone was made with: a finite loader, restarted every epoch)
train_dataloader = dict(
    batch_size=64,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, synthetic=synthetic, ann_file='train.txt'))
val_dataloader = dict(dataset=dict(data_root=data_root, synthetic=synthetic, ann_file='val.txt'))
test_dataloader = val_dataloader
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=400)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min_ratio=0.01),
]
optim_wrapper = dict(optimizer=dict(lr=2e-3), paramwise_cfg=dict(custom_keys={}))
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_hooks = []
