# LoRA at rank 2 (the rank study: mAP against trainable parameters).
_base_ = ['./lora.py']
model = dict(backbone=dict(adapter=dict(rank=2)))
