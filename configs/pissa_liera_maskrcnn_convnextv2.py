# PiSSA + LieRA (paper Table 7): factors start on the principal singular subspace of each weight
# and the Lie-algebra update is dW = s (B A - B0 A0), zero at init, so the model starts exactly
# at the pretrained one (see mmliera LieRALayer.reset_adapter), r=16.
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(backbone=dict(adapter=dict(init='pissa')))
