# LoRA baseline, rank 32.
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(backbone=dict(adapter=dict(mode='lora', rank=32)))
