# Whole detector, LoRA: the same factors as whole_liera.py with the additive update W + dW.
_base_ = ['./whole_liera.py']
adapter = dict(mode='lora', rank=8)
model = dict(adapters=dict(backbone=adapter, neck=adapter, rpn_head=adapter, roi_head=adapter))
