# Full fine-tuning: every backbone parameter trains (no freezing hook).
_base_ = ['./_base_capacity.py']
custom_hooks = [{{_base_.pretrain_hook}}]
