# One task of the multi-adapter demo (docs/multi_adapter.md): the demo's pre-trained Mask R-CNN
# (full_maskrcnn_convnextv2-atto_synthetic-pretrain.py, made on first use and saved without its
# class layers) adapted whole to the shapes' 3 classes: type='LieRADetector', rank-8 LieRA
# factors in the backbone, neck, RPN and RoI heads, the class layers re-created and trained.
# What training writes, adapters_last.safetensors (~1 MB: the factors and the class layers), is
# one task a multi-adapter server loads beside others of this base:
#   python tools/train.py configs/demo/whole_liera_maskrcnn_convnextv2-atto_synthetic.py
#   python tools/infer.py configs/demo/whole_liera_maskrcnn_convnextv2-atto_synthetic.py \
#       --adapters shapes=A.safetensors discs=B.safetensors data/synthetic_coco/val
_base_ = ['./_base_slim_maskrcnn_synthetic.py']

runner_type = 'LieRARunner'
pretrain_config = '{{ fileDirname }}/full_maskrcnn_convnextv2-atto_synthetic-pretrain.py'
start_detector = '{{ fileDirname }}/../../work_dirs/demo_pretrain/maskrcnn_convnextv2-atto_synthetic.pth'
class_layers = [
    'roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg', 'roi_head.mask_head.conv_logits'
]
adapter = dict(mode='taylor', rank=8)
model = dict(
    type='LieRADetector',
    detector='MaskRCNN',
    adapters=dict(backbone=adapter, neck=adapter, rpn_head=adapter, roi_head=adapter),
    new_layers='auto',
    backbone=dict(init_cfg=None))  # every weight comes from load_from
load_from = start_detector
# the factors at 10x the base lr (the whole-detector study's choice; the class layers at 1x)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(lora_=dict(lr_mult=10.0))))
custom_hooks = [
    dict(type='LieRAFreezeHook'),
    dict(type='AdapterCheckpointHook', interval=-1),  # adapters_last.safetensors at the end
    dict(type='PretrainBackboneHook',
         config=pretrain_config,
         checkpoint=start_detector,
         prefix='',
         drop=class_layers),
]
