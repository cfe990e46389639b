# Table 1: LoRA at rank 4 on every Conv2d of ConvNeXt-V2-B, one VTAB-1k task
# (VTAB_TASK=<task>, default cifar); see _base_convnextv2-b_vtab1k.py
_base_ = ['./_base_convnextv2-b_vtab1k.py']
model = dict(backbone=dict(adapter=dict(mode='lora', rank=4)))
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/lora_r4'
