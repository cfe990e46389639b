# PiSSA + LieRA: PiSSA's initialisation, Lie-algebra update W + W * dW.
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='taylor', init='pissa')))
