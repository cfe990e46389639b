# LieRA Taylor, rank 2 on every conv and linear layer of the backbone: W' = W + W ⊙ ΔW
# (ΔW = reshape(B·A)·alpha/r); only the factors train in the backbone.
_base_ = ['./_base_capacity.py']
model = dict(backbone=dict(type='LieRAConvNeXt', adapter=dict(mode='taylor', rank=2)))
