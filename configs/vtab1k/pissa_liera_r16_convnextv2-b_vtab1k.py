# Table 7 (VTAB column): PiSSA + LieRA, rank 16: factors on W's principal subspace, Taylor update
_base_ = ['./_base_convnextv2-b_vtab1k.py']
model = dict(backbone=dict(adapter=dict(mode='taylor', rank=16, init='pissa')))
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/pissa_liera_r16'
