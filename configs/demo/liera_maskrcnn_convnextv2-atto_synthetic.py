# The embedded demo: LieRA (Taylor, r=8) on a ConvNeXt-V2-atto Mask R-CNN, trained and evaluated
# (COCO bbox + segm mAP) on mmliera's generated shapes. Only the adapter factors, the neck and the
# heads train (LieRAFreezeHook).
#   python tools/train.py configs/demo/liera_maskrcnn_convnextv2-atto_synthetic.py
_base_ = ['./_base_slim_maskrcnn_synthetic.py']

runner_type = 'LieRARunner'
model = dict(
    backbone=dict(
        type='LieRAConvNeXt',
        adapter=dict(mode='taylor', rank=8)))
custom_hooks = [dict(type='LieRAFreezeHook')]
