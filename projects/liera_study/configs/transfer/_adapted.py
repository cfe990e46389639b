# The adapted methods: LieRAConvNeXt with rank-8 factors on every conv and linear layer of the
# backbone (the same factor shapes for every method); only the factors (and DoRA's magnitudes)
# train in the backbone.
_base_ = ['./_base_transfer.py']
model = dict(backbone=dict(type='LieRAConvNeXt', adapter=dict(mode='taylor', rank=8)))
