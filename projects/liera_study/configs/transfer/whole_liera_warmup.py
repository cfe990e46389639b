# Whole detector, LieRA with a 100-iteration warm-up instead of 20 (paired with
# whole_lora_warmup.py).
_base_ = ['./whole_liera.py']
warmup_iters = 100
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end={{_base_.max_iters}},
         eta_min_ratio=0.05),
]
