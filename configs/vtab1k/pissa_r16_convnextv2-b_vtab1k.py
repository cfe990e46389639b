# Table 7 (VTAB column): PiSSA (LoRA's additive update, principal-subspace init), rank 16
_base_ = ['./_base_convnextv2-b_vtab1k.py']
model = dict(backbone=dict(adapter=dict(mode='lora', rank=16, init='pissa')))
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/pissa_r16'
