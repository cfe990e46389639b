# Norms-only: the plain pre-trained backbone frozen but for its LayerNorm / GRN parameters and
# biases (norm_patterns in _base_transfer.py); neck and heads train.
_base_ = ['./_base_transfer.py']
custom_hooks = [
    dict(type='LieRAFreezeHook', trainable={{_base_.norm_patterns}}), {{_base_.pretrain_hook}}
]
