# DoRA + LieRA (paper Table 7): DoRA's learnable magnitude per output channel times the
# direction of the LieRA weight, m * W' / ||W'|| (norm detached), r=16. Adds C_out parameters
# per adapted layer (17,381,312 in all for ConvNeXt-V2-B).
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(backbone=dict(adapter=dict(dora=True)))
