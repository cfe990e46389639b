# LieRA (Taylor, r=8) on mmdet's Mask R-CNN R-50 FPN 1x (COCO), starting from the torchvision
# ResNet-50 checkpoint that mmdet's config uses. type='LieRA' builds the plain ResNet through the
# registry and returns it adapted in place: same class, same parameter names, so init_cfg,
# frozen_stages and norm_eval work as for the plain backbone.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)
runner_type = 'LieRARunner'

model = dict(
    backbone=dict(
        _delete_=True,
        type='LieRA',
        backbone={{_base_.model.backbone}},
        adapter=dict(mode='taylor', rank=8, alpha=None, dropout=0.0, targets=None)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05))
custom_hooks = [dict(type='LieRAFreezeHook')]
