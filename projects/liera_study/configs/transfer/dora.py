# DoRA: magnitude m times the direction of W + dW (mode='lora', dora=True).
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='lora', dora=True)))
