"""export.plain_config: mmliera configs rewritten into plain mmdet / mmpretrain terms."""
import os

import pytest
import torch
from helpers import ROOT, STUDY_CONFIGS, mmliera_parts, mmliera_types
from mmdet.registry import MODELS
from mmengine.config import Config

from mmliera.checkpoint.export import MMLIERA_TYPES, plain_config


def test_every_registered_mmliera_type_is_known_to_the_export():
    assert mmliera_types() <= set(MMLIERA_TYPES)


@pytest.mark.parametrize('config,inner', [('liera_maskrcnn_r50.py', 'ResNet'),
                                          ('liera_maskrcnn_swin-t.py', 'SwinTransformer')])
def test_type_liera_configs_export_to_their_inner_backbone(config, inner):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', config))
    wrapped = cfg.model.backbone
    assert wrapped.type == 'LieRA' and mmliera_parts(cfg)
    plain = plain_config(cfg)
    assert mmliera_parts(plain) == []
    bb = plain.model.backbone
    assert bb.type == inner and bb.init_cfg is None
    expected = {k: v for k, v in wrapped.backbone.items() if k != 'init_cfg'}
    assert {k: v for k, v in bb.items() if k != 'init_cfg'} == expected
    assert plain.get('runner_type') is None
    assert not any(h['type'] in MMLIERA_TYPES for h in plain.get('custom_hooks', []))
    assert plain.model.neck == cfg.model.neck and plain.model.roi_head == cfg.model.roi_head
    # plain mmdet builds it, and an adapted model's merged state dict loads strictly
    model = MODELS.build(plain.model)
    adapted = MODELS.build(
        dict(cfg.model, backbone=dict(wrapped, backbone=dict(wrapped.backbone, init_cfg=None))))
    import mmliera
    from mmliera.checkpoint.export import merged_state_dict
    torch.manual_seed(0)
    layers = mmliera.adapter_layers(adapted)
    assert layers
    with torch.no_grad():  # trained-looking adapters: W' differs from W
        for layer in layers.values():
            layer.lora_B.normal_(std=0.05)
    model.load_state_dict(merged_state_dict(adapted), strict=True)
    assert type(model.backbone).__name__ == inner and not mmliera.adapter_layers(model)
    model.eval()  # (mmdet's ResNet.train returns None: no chaining)
    adapted.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, want = model.backbone(x), adapted.backbone(x)
        for layer in layers.values():
            layer.lora_B.zero_()
        base = adapted.backbone(x)  # W alone: other outputs, so the merge carried W'
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
    assert any(not torch.allclose(w, b, atol=1e-3) for w, b in zip(want, base))


def test_cannot_export_names_the_mmliera_parts(tmp_path):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py'))
    cfg.model.neck = dict(
        type='LieRA', backbone=dict(type='FPN', in_channels=[1], out_channels=1, num_outs=1))
    with pytest.raises(ValueError, match=r"cannot export: .*model\.neck: LieRA"):
        plain_config(cfg)
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py'))
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset', datasets=[cfg.train_dataloader.dataset,
                                        dict(type='LieRAConvNeXt')])
    with pytest.raises(
            ValueError, match=r'train_dataloader\.dataset\.datasets\[1\]: '
            'LieRAConvNeXt'):
        plain_config(cfg)


def test_mmliera_hooks_and_runner_are_dropped():
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py'))
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='ExactResumeHook'), dict(type='EMAHook')]
    plain = plain_config(cfg)
    assert [h['type'] for h in plain.custom_hooks] == ['EMAHook']
    assert 'runner_type' not in plain and mmliera_parts(plain) == []


def test_classification_study_config_exports_to_plain_mmpretrain_terms():
    cfg = Config.fromfile(os.path.join(STUDY_CONFIGS, 'transfer_cls', 'liera_r8.py'))
    assert mmliera_parts(cfg)
    plain = plain_config(cfg)
    assert mmliera_parts(plain) == []
    ds = plain.train_dataloader.dataset
    assert ds.type == 'CustomDataset' and 'synthetic' not in ds
    # the study's package registered that dataset: its import goes with it
    assert 'projects.liera_study.liera_study' in cfg.custom_imports.imports
    assert not any(
        m.startswith(('mmliera', 'projects.'))
        for m in (plain.get('custom_imports') or {}).get('imports', []))
    assert ds.metainfo.classes == ['square', 'disc', 'triangle', 'cross', 'star']
    bb = plain.model.backbone
    assert bb.type == 'mmpretrain.ConvNeXt' and 'adapter' not in bb


def test_any_generated_dataset_says_what_it_exports_as():
    """The exporter knows no dataset by name: a registered class with ``plain_dataset(cfg)``
    is replaced by what that returns, wherever it sits in the config."""
    from mmdet.datasets import CocoDataset

    from mmliera.registry import DATASETS

    class MadeHere(CocoDataset):

        @classmethod
        def plain_dataset(cls, cfg):
            cfg = dict(cfg, type='CocoDataset', metainfo=dict(classes=['a']))
            cfg.pop('recipe')
            return cfg

    DATASETS.register_module(name='ExportProbeDataset', force=True, module=MadeHere)
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py'))
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset',
        datasets=[
            dict(type='ExportProbeDataset', recipe=1, data_root='d/'), cfg.val_dataloader.dataset
        ])
    plain = plain_config(cfg)
    first = plain.train_dataloader.dataset.datasets[0]
    assert first == dict(type='CocoDataset', metainfo=dict(classes=['a']), data_root='d/')
