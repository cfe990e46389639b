# DoRA + LieRA: magnitude m times the direction of W + W * dW.
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='taylor', dora=True)))
