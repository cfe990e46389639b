# LieRA Taylor, rank 32 (34.54M adapter parameters).
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(backbone=dict(adapter=dict(rank=32)))
