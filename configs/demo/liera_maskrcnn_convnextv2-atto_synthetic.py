# The embedded demo: LieRA (Taylor, r=8) adapting a pre-trained ConvNeXt-V2-atto Mask R-CNN
# backbone on mmliera's generated shapes, then COCO bbox + segm mAP (CocoMetric). Only the
# adapter factors, the neck and the heads train (LieRAFreezeHook).
#   python tools/train.py configs/demo/liera_maskrcnn_convnextv2-atto_synthetic.py
# On first use it generates data/synthetic_coco/ and, when the pretrained backbone checkpoint is
# missing, makes it: a short full training on the separate 'pretrain' split (the config
# full_maskrcnn_convnextv2-atto_synthetic-pretrain.py), saved in mmpretrain's format.
_base_ = ['./_base_slim_maskrcnn_synthetic.py']

runner_type = 'LieRARunner'
pretrained = '{{ fileDirname }}/../../work_dirs/demo_pretrain/convnext-v2-atto_synthetic.pth'
model = dict(
    backbone=dict(
        type='LieRAConvNeXt',
        adapter=dict(mode='taylor', rank=8),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
custom_hooks = [
    dict(type='LieRAFreezeHook'),
    dict(type='AdapterCheckpointHook', interval=-1),  # adapters_last.safetensors at the end
    dict(type='PretrainBackboneHook',
         config='{{ fileDirname }}/full_maskrcnn_convnextv2-atto_synthetic-pretrain.py',
         checkpoint=pretrained),
]
