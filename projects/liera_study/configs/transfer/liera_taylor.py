# LieRA, first-order Taylor (the paper's default): W' = W + W * dW.
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='taylor')))
