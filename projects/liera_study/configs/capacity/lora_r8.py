# LoRA, rank 8 on every conv and linear layer of the backbone: W' = W + ΔW (additive, the same
# factor shapes as LieRA); only the factors train in the backbone.
_base_ = ['./_base_capacity.py']
model = dict(backbone=dict(type='LieRAConvNeXt', adapter=dict(mode='lora', rank=8)))
