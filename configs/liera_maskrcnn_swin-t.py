# LieRA (Taylor, r=8) on mmdet's Mask R-CNN Swin-T FPN 1x (COCO), starting from the official
# Swin-T ImageNet checkpoint that mmdet's config uses. Every Conv2d / Linear of the backbone
# (patch embedding, qkv / proj, MLPs, patch merging) carries LieRA factors.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)
runner_type = 'LieRARunner'

model = dict(
    backbone=dict(
        _delete_=True,
        type='LieRA',
        backbone={{_base_.model.backbone}},
        adapter=dict(mode='taylor', rank=8, alpha=None, dropout=0.0, targets=None)))

custom_hooks = [dict(type='LieRAFreezeHook')]
