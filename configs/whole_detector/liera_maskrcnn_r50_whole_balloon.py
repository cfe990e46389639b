# A whole trained detector adapted to new data: mmdet's model-zoo Mask R-CNN R-50 FPN (COCO,
# 80 classes) fine-tuned on a dataset with other classes (_balloon.py), LieRA (Taylor) factors
# in the backbone, the neck and both heads; the class-dependent layers (fc_cls, fc_reg,
# conv_logits) are re-created for the new classes and train fully; everything else is frozen
# (norms keep their statistics). The detector's class and parameter names stay mmdet's, so
# the model-zoo checkpoint loads as it is (one line names the re-created layers).
#   mkdir -p checkpoints && wget -P checkpoints <load_from_url below>
#   python tools/train.py configs/whole_detector/liera_maskrcnn_r50_whole_balloon.py
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_balloon.py']

custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)
runner_type = 'LieRARunner'

num_classes = len({{_base_.classes}})
model = dict(
    type='LieRADetector',
    detector='MaskRCNN',  # the detector's own settings stay beside it (mmdet's base config)
    adapters=dict(
        backbone=dict(mode='taylor', rank=16),
        neck=dict(mode='taylor', rank=8),
        rpn_head=dict(mode='taylor', rank=4),
        roi_head=dict(mode='taylor', rank=8)),
    new_layers='auto',  # the layers whose shape follows num_classes
    trainable=[],  # e.g. [r'roi_head\..*norm.*'] to train head norms too
    backbone=dict(init_cfg=None),  # every weight comes from load_from
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)))

train_dataloader = dict(batch_size=2, dataset={{_base_.balloon_train}})
val_dataloader = dict(dataset={{_base_.balloon_val}})
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={{_base_.balloon_val_ann}})
test_evaluator = val_evaluator

load_from_url = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'  # noqa
load_from = 'checkpoints/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'

# PEFT schedule: AdamW, no weight decay on the adapter factors (LieRARunner's default)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
custom_hooks = [dict(type='LieRAFreezeHook')]
