# Whole detector, LoRA with two learning rates (the convergence study's fair chance (a)): the
# backbone's factors at one lr_mult (custom key 'backbone': the longest matching key wins, and
# in the backbone only the factors train), the neck's and heads' factors at another (key
# 'lora_'); the class layers stay at the base lr.
_base_ = ['./whole_lora.py']
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0), lora_=dict(lr_mult=1.0))))
