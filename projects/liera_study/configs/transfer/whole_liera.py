# Whole detector, LieRA (Taylor): rank-8 factors in the backbone, the neck, the RPN head and the
# RoI heads (their class layers excepted: re-created, trained fully); everything else frozen.
_base_ = ['./_whole.py']
adapter = dict(mode='taylor', rank=8)
model = dict(adapters=dict(backbone=adapter, neck=adapter, rpn_head=adapter, roi_head=adapter))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(lora_=dict(lr_mult=1.0))))
