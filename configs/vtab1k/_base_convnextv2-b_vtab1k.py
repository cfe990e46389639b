# The paper's classification setting (Table 1): ConvNeXt-V2-B fine-tuned on one VTAB-1k task,
# trained on train800val200 (all 1,000 labelled images), tested on test, unnormalised inputs.
# The task comes from the environment (default: cifar, i.e. CIFAR-100):
#     VTAB_TASK=dtd python tools/train.py configs/vtab1k/liera_r8_convnextv2-b_vtab1k.py
# Data layout (docs/classification.md): data/vtab-1k/<task>/{train800val200.txt,test.txt,images/},
# each line of a list "images/<file> <label>". LieRA Taylor on every Conv2d of the backbone
# (stem, downsampling and depthwise 7x7 convs; ConvNeXt's pointwise convs are Linear layers and
# are not adapted): with the 100-class head this gives Table 1's parameter counts.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)

vtab_classes = dict(
    cifar=100, caltech101=102, dtd=47, oxford_flowers102=102, oxford_iiit_pet=37, svhn=10,
    sun397=397, patch_camelyon=2, eurosat=10, resisc45=45, diabetic_retinopathy=5,
    clevr_count=8, clevr_dist=6, dmlab=6, kitti=4, dsprites_loc=16, dsprites_ori=16,
    smallnorb_azi=18, smallnorb_ele=9)
task = '{{$VTAB_TASK:cifar}}'
assert task in vtab_classes, \
    f'VTAB_TASK={task!r} is not a VTAB-1k task; use one of {", ".join(vtab_classes)}'
num_classes = vtab_classes[task]
data_root = f'data/vtab-1k/{task}/'

# ConvNeXt-V2-B, FCMAE pre-trained on ImageNet-22k and fine-tuned on ImageNet-1k (224 px), from
# mmpretrain's model zoo; only the backbone's weights are loaded (the head is new)
checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext-v2/'
              'convnext-v2-base_fcmae-in21k-pre_3rdparty_in1k_20230104-c48d16a5.pth')
conv_targets = [r'downsample_layers\..*', 'depthwise_conv']  # every Conv2d of ConvNeXt
runner_type = 'LieRARunner'
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='LieRAConvNeXt',
        arch='base',
        use_grn=True,
        layer_scale_init_value=0.,
        drop_path_rate=0.1,
        gap_before_final_norm=True,
        adapter=dict(mode='taylor', rank=16, targets=conv_targets),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    # unnormalised inputs (as VTAB): RGB scaled to [0, 1], no mean / std
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=num_classes,
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        to_rgb=True),
)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset', data_root=data_root, ann_file='train800val200.txt',
        pipeline=pipeline))
test_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset', data_root=data_root, ann_file='test.txt', pipeline=pipeline))
test_evaluator = dict(type='Accuracy', topk=(1, ))
# the paper trains on all 1,000 labelled images and reports test accuracy; validation is the
# test split, as in the VTAB-1k protocol of its references
val_dataloader = test_dataloader
val_evaluator = test_evaluator

# schedule (the paper gives none for VTAB; the common VTAB-1k PEFT recipe): AdamW, 100 epochs,
# 10 warm-up epochs, cosine to 0; batch 64 on one GPU
# (LieRARunner: adapter factors get no weight decay, paramwise_cfg.adapter_decay_mult)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=10, end=100, eta_min=0.,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=100)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(enable=False, base_batch_size=64)

custom_hooks = [dict(type='LieRAFreezeHook')]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/liera_r16'
