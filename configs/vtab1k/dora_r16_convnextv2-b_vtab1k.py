# Table 7 (VTAB column): DoRA (on LoRA's additive update), rank 16
_base_ = ['./_base_convnextv2-b_vtab1k.py']
model = dict(backbone=dict(adapter=dict(mode='lora', rank=16, dora=True)))
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/dora_r16'
