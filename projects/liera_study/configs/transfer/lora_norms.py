# LoRA + norms: LoRA's factors and the backbone's norms / GRN / biases train.
_base_ = ['./lora.py']
custom_hooks = [
    dict(type='LieRAFreezeHook', trainable={{_base_.norm_patterns}}), {{_base_.pretrain_hook}}
]
