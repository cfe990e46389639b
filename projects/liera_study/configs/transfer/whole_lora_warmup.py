# Whole detector, LoRA with a 100-iteration warm-up instead of 20 (the convergence study's fair
# chance (b)): LoRA's first steps disturb the trained detector (val bbox at iteration 80 below
# the heads-only arm's); a longer warm-up is the standard answer.
_base_ = ['./whole_lora.py']
warmup_iters = 100
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end={{_base_.max_iters}},
         eta_min_ratio=0.05),
]
