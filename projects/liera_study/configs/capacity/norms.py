# Norms-only: the plain backbone frozen but for its LayerNorm / GRN parameters and biases
# (norm_patterns in _base_transfer_cls.py); the head trains.
_base_ = ['./_base_capacity.py']
custom_hooks = [
    dict(type='LieRAFreezeHook', trainable={{_base_.norm_patterns}}), {{_base_.pretrain_hook}}
]
