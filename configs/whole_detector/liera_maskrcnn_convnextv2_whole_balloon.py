# The whole-detector adaptation with the paper's backbone: a ConvNeXt-V2-B Mask R-CNN trained
# on COCO (configs/full_maskrcnn_convnextv2.py; mmdet's ConvNeXt-V2 project publishes no
# checkpoint of it, so load_from is your own run's), adapted to _balloon.py's classes with
# LieRA factors in every part; new class layers re-created and trained fully.
#   python tools/train.py configs/full_maskrcnn_convnextv2.py          # once, on COCO
#   python tools/train.py configs/whole_detector/liera_maskrcnn_convnextv2_whole_balloon.py
_base_ = ['../full_maskrcnn_convnextv2.py', './_balloon.py']

num_classes = len({{_base_.classes}})
model = dict(
    type='LieRADetector',
    detector='MaskRCNN',
    adapters=dict(
        backbone=dict(mode='taylor', rank=16),
        neck=dict(mode='taylor', rank=8),
        rpn_head=dict(mode='taylor', rank=4),
        roi_head=dict(mode='taylor', rank=8)),
    new_layers='auto',
    backbone=dict(init_cfg=None),  # every weight comes from load_from
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)))

# the last checkpoint of configs/full_maskrcnn_convnextv2.py (12 epochs)
train_dataloader = dict(batch_size=2, dataset={{_base_.balloon_train}})
val_dataloader = dict(dataset={{_base_.balloon_val}})
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={{_base_.balloon_val_ann}})
test_evaluator = val_evaluator

load_from = 'work_dirs/full_maskrcnn_convnextv2/epoch_12.pth'
custom_hooks = [dict(type='LieRAFreezeHook')]
