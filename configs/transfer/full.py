# Full fine-tuning: every backbone parameter trains (no freezing hook).
_base_ = ['./_base_transfer.py']
custom_hooks = [
    dict(type='PretrainBackboneHook', config={{_base_.pretrain_config}},
         checkpoint={{_base_.pretrained}}),
]
