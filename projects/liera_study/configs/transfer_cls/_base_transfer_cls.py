# The embedded classification transfer task (README "Classification transfer study"): name the
# texture of the one object in a 64 px image (5 classes; projects/liera_study/liera_study/datasets/transfer_cls.py),
# starting from a ConvNeXt-V2-atto pre-trained on a different source task: classify three
# shapes filled flat in random colours (source_pretrain.py; the target: five shapes, two of them
# new, filled with textures, with clutter). The shipped backbone
# (projects/liera_study/results/transfer_cls_study/start_backbone.pth, weights' checksum pinned below) is made again by
# PretrainBackboneHook only when missing. An mmpretrain ImageClassifier (GAP, linear head) in
# mmpretrain's scope; the same schedule and optimizer for every method; what differs is the
# backbone's trainable part and its learning-rate multiplier (chosen per method on val):
#   projects/liera_study/tools/transfer_cls_study.sh   (projects/liera_study/tools/compare_methods.py with per-arm lr_mult grids)
default_scope = 'mmpretrain'
custom_imports = dict(
    imports=['mmliera', 'projects.liera_study.liera_study'], allow_failed_imports=False)
runner_type = 'LieRARunner'

data_root = '{{$MMLIERA_TRANSFER_CLS_DATA:{{ fileDirname }}/../../../../data/transfer_cls/}}'
# three disjoint, deterministic splits: train (fit), val (every choice), test (final runs only);
# 800 + 200 labelled images, as VTAB-1k's train800val200
synthetic = dict(image_size=64, splits=dict(train=800, val=200, test=600))
num_classes = 5
pretrained = '{{ fileDirname }}/../../results/transfer_cls_study/start_backbone.pth'
pretrained_sha256 = '89ca6d56f07b1fdbb2cf3665edf0690e480aa67081cf6606e05714db11fea0b0'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ConvNeXt',
        arch='atto',
        use_grn=True,
        layer_scale_init_value=0.,
        drop_path_rate=0.,
        gap_before_final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=320,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    # the normalisation the backbone was pre-trained with (mmdet's Mask R-CNN defaults)
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=num_classes,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _split(name, shuffle, pipeline, sampler='DefaultSampler'):
    return dict(
        batch_size=32,
        num_workers=1,
        persistent_workers=True,
        sampler=dict(type=sampler, shuffle=shuffle),
        dataset=dict(
            type='TransferClsDataset',
            data_root=data_root,
            synthetic=synthetic,
            ann_file=f'{name}.txt',
            pipeline=pipeline))


# (an iteration-based loop over an InfiniteSampler: mmengine pauses 2 s at every restart of a
# finite loader, 12 times per run here)
train_dataloader = _split('train', True, train_pipeline, 'InfiniteSampler')
val_dataloader = _split('val', False, test_pipeline)
test_dataloader = _split('test', False, test_pipeline)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# AdamW at base lr 1e-3 for the head (weight decay 0.05, none on adapter parameters:
# LieRARunner's adapter_decay_mult=0), the backbone at lr_mult x that; warm-up then cosine,
# 300 iterations of batch 32 (12 epochs of the 800 training images); val accuracy every 100
# (is the schedule long enough; the last one selects lr_mult)
max_iters = 300
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min_ratio=0.05),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}, adapter_decay_mult=0.0))
auto_scale_lr = dict(enable=False, base_batch_size=32)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
log_processor = dict(by_epoch=False)
# the shipped backbone is checked against its checksum (a warning names another one); it is
# made again (source_pretrain.py) only when the file is missing
pretrain_hook = dict(
    type='PretrainBackboneHook',
    config='{{ fileDirname }}/source_pretrain.py',
    checkpoint=pretrained,
    sha256=pretrained_sha256)
custom_hooks = [dict(type='LieRAFreezeHook'), pretrain_hook]
# the backbone's 1-D parameters (LayerNorm weights and biases, GRN gamma / beta, every conv and
# linear bias) for the norms arms: patterns of LieRAFreezeHook's ``trainable``
norm_patterns = [
    r'backbone\..*\.(bias|gamma|beta)',
    r'backbone\..*norm\d*\.weight',
    r'backbone\.downsample_layers\.\d+\.0\.weight',
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
