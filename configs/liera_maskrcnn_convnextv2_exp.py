# LieRA with the exact group exponential W' = W * exp(dW), rank 16 (paper Table 6, "w/o TA").
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(backbone=dict(adapter=dict(mode='exp')))
