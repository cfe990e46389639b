# The embedded transfer task (projects/liera_study/docs/study.md). Every method of the study starts from the same
# backbone: the demo's ConvNeXt-V2-atto pre-trained on the 'pretrain' split of the demo's shapes,
# shipped as projects/liera_study/results/transfer_study/start_backbone.pth (13 MB; its weights' checksum is pinned
# below). The pre-training repeats bit for bit on one machine however it is launched, but not
# across CPUs or library versions, so the study ships the file it started from;
# PretrainBackboneHook makes one again only when the file is missing, and the hook and the
# comparison tool report a backbone with another checksum. The task adapts it to a
# shifted target (projects/liera_study/liera_study/datasets/transfer_coco.py: new classes = textures, flat distractors,
# clutter, smaller objects). Same slim Mask R-CNN, schedule and optimizer for every
# method; what differs is the backbone's trainable part and its learning-rate multiplier
# (optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult, chosen per method on the val split:
#   python projects/liera_study/tools/compare_methods.py projects/liera_study/configs/transfer/{frozen,lora,...}.py \
#       --grid lr_mult=0.1,0.3,1,3,10,30,100 --seeds 0 1 2 3 4 --work-dir work_dirs/transfer_study
_base_ = ['../../../../configs/demo/_base_slim_maskrcnn_synthetic.py']

custom_imports = dict(
    imports=['mmliera', 'projects.liera_study.liera_study'], allow_failed_imports=False)
runner_type = 'LieRARunner'
data_root = '{{$MMLIERA_TRANSFER_DATA:{{ fileDirname }}/../../../../data/transfer_coco_v2/}}'
# three disjoint, deterministic splits: train (fit), val (every choice), test (final runs only)
synthetic = dict(image_size={{_base_.image_size}}, splits=dict(train=128, val=64, test=256))
pretrained = '{{ fileDirname }}/../../results/transfer_study/start_backbone.pth'
pretrain_config = '{{ fileDirname }}/../../../../configs/demo/full_maskrcnn_convnextv2-atto_synthetic-pretrain.py'
# sha256 of the shipped backbone's weights (mmliera.checkpoint.weights_sha256); the study's
# records hold it too, and a run from a backbone with another one is run again and reported
pretrained_sha256 = '74bc85e1919a1f33d798daf56faceb8fbfcabbe4db1eb3f0d44ebd13662cf718'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

train_dataloader = dict(
    dataset=dict(
        type='TransferCocoDataset',
        data_root=data_root,
        synthetic=synthetic,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/')))
val_dataloader = dict(
    dataset=dict(
        type='TransferCocoDataset',
        data_root=data_root,
        synthetic=synthetic,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/')))
test_dataloader = dict(
    dataset=dict(
        type='TransferCocoDataset',
        data_root=data_root,
        synthetic=synthetic,
        ann_file='annotations/instances_test.json',
        data_prefix=dict(img='test/')))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')

# The schedule: the demo's AdamW at base lr 1e-3 for the neck and heads (weight decay 0.05,
# none on adapter parameters: LieRARunner's adapter_decay_mult=0), warm-up then cosine, 160
# iterations of batch 4 (5 epochs of the 128 training images); val mAP at iterations 80 and 160
# (whether the schedule is long enough; the last one selects lr_mult).
max_iters = 160
val_interval = 80
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min_ratio=0.05),
]
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}, adapter_decay_mult=0.0))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
pretrain_hook = dict(
    type='PretrainBackboneHook',
    config=pretrain_config,
    checkpoint=pretrained,
    sha256=pretrained_sha256)
custom_hooks = [dict(type='LieRAFreezeHook'), pretrain_hook]
# The backbone's 1-D parameters (LayerNorm weights and biases, GRN gamma / beta, every conv and
# linear bias) for the norms arms (norms.py, lora_norms.py, liera_norms.py; a standard
# vision-PEFT baseline, BitFit-like): patterns of LieRAFreezeHook's ``trainable``.
norm_patterns = [
    r'backbone\..*\.(bias|gamma|beta)',
    r'backbone\..*norm\d*\.weight',
    r'backbone\.downsample_layers\.\d+\.0\.weight',
]
