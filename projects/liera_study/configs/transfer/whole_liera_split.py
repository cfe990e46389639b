# Whole detector, LieRA with two learning rates (paired with whole_lora_split.py): the
# backbone's factors at one lr_mult, the neck's and heads' factors at another.
_base_ = ['./whole_liera.py']
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0), lora_=dict(lr_mult=1.0))))
