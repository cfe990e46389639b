# Table 7 (VTAB column): DoRA + LieRA, rank 16: DoRA's magnitude on the LieRA weight
_base_ = ['./_base_convnextv2-b_vtab1k.py']
model = dict(backbone=dict(adapter=dict(mode='taylor', rank=16, dora=True)))
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/dora_liera_r16'
