# LieRA, exact: W' = W * exp(dW).
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='exp')))
