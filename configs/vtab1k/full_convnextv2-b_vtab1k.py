# Table 1's "Fully FT": plain ConvNeXt-V2-B and head, every parameter trains (no adapters, no
# freezing hook)
_base_ = ['./_base_convnextv2-b_vtab1k.py']
model = dict(backbone=dict(_delete_=True, type='ConvNeXt', arch='base', use_grn=True,
                           layer_scale_init_value=0., drop_path_rate=0.1,
                           gap_before_final_norm=True,
                           init_cfg=dict(type='Pretrained', checkpoint={{_base_.checkpoint}},
                                         prefix='backbone.')))
custom_hooks = []
work_dir = './work_dirs/vtab1k/{{$VTAB_TASK:cifar}}/full'
