# Full fine-tuning baseline: plain ConvNeXt-V2-B, no adapters, no freezing.
_base_ = './liera_maskrcnn_convnextv2.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch='base',
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.4,
        layer_scale_init_value=0.,
        gap_before_final_norm=False,
        use_grn=True,
        init_cfg=dict(
            type='Pretrained', checkpoint={{_base_.checkpoint_file}},
            prefix='backbone.')))
custom_hooks = []
