# LoRA: W' = W + dW (additive, the same factor shapes as LieRA).
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='lora')))
