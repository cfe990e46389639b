# LoRA baseline W' = W + dW with the very same factor shapes as LieRA, rank 16.
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(backbone=dict(adapter=dict(mode='lora')))
