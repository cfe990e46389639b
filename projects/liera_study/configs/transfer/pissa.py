# PiSSA: factors initialised from W's principal directions, additive update.
_base_ = ['./_adapted.py']
model = dict(backbone=dict(adapter=dict(mode='lora', init='pissa')))
