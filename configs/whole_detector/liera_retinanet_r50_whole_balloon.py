# The same whole-detector adaptation on a one-stage detector: mmdet's model-zoo RetinaNet R-50
# FPN (COCO) adapted to _balloon.py's classes. Only retina_cls depends on num_classes (found
# automatically); LieRA factors in the backbone, the neck and the head's conv towers and
# retina_reg.
#   mkdir -p checkpoints && wget -P checkpoints <load_from_url below>
#   python tools/train.py configs/whole_detector/liera_retinanet_r50_whole_balloon.py
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', './_balloon.py']

custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)
runner_type = 'LieRARunner'

model = dict(
    type='LieRADetector',
    detector='RetinaNet',
    adapters=dict(
        backbone=dict(mode='taylor', rank=16),
        neck=dict(mode='taylor', rank=8),
        bbox_head=dict(mode='taylor', rank=8)),
    new_layers='auto',
    backbone=dict(init_cfg=None),
    bbox_head=dict(num_classes=len({{_base_.classes}})))

# boxes only: the balloon annotations' masks are not read
train_dataloader = dict(batch_size=2, dataset={{_base_.balloon_train}})
val_dataloader = dict(dataset={{_base_.balloon_val}})
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={{_base_.balloon_val_ann}}, metric='bbox')
test_evaluator = val_evaluator

load_from_url = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r50_fpn_1x_coco/retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth'  # noqa
load_from = 'checkpoints/retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth'

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
custom_hooks = [dict(type='LieRAFreezeHook')]
