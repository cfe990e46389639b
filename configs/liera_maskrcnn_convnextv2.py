# LieRA (Taylor, r=16) Mask R-CNN + FPN with ConvNeXt-V2-B on COCO 2017: the paper's setting
# (Table 2: MMDetection Mask R-CNN, 12 epochs, AdamW lr 1e-4, weight decay 0.05, batch 32).
# Every Conv2d and Linear of the backbone carries LieRA factors; only they (and the new neck and
# heads) train. Train: bash tools/dist_train.sh configs/liera_maskrcnn_convnextv2.py 8
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)
# applies the freezing policy before DDP and the optimizer see the model
runner_type = 'LieRARunner'

# mmpretrain's official ConvNeXt-V2-B (FCMAE pre-trained, ImageNet-1k fine-tuned)
checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/convnext-v2/convnext-v2-base_3rdparty-fcmae_in1k_20230104-8a798eaf.pth'  # noqa

model = dict(
    backbone=dict(
        _delete_=True,
        type='LieRAConvNeXt',
        arch='base',
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.4,  # as mmdet's ConvNeXt-V2 project
        layer_scale_init_value=0.,  # no layer scale with GRN
        gap_before_final_norm=False,
        use_grn=True,  # ConvNeXt-V2
        adapter=dict(mode='taylor', rank=16, alpha=None, dropout=0.0, targets=None),
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512, 1024]))

data_root = 'data/coco/'
train_dataloader = dict(batch_size=4, num_workers=4, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json',
                     metric=['bbox', 'segm'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))

# 8 GPUs x 4 images = 32; --auto-scale-lr rescales lr for other totals
auto_scale_lr = dict(enable=False, base_batch_size=32)

custom_hooks = [dict(type='LieRAFreezeHook')]
