"""Adapter checkpoints (safetensors), merge-and-export to plain mmdet, safe and exact resume."""
import os
import os.path as osp
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from helpers import ROOT, maps, run, write_cfg
from mmliera import (AdapterCheckpointError, adapter_layers, load_adapter_checkpoint,
                     save_adapter_checkpoint)
from mmliera.engine.safe_load import mmengine_safe_globals, safe_load


def build(cfg_path, **adapter):
    cfg = Config.fromfile(cfg_path)
    if adapter:
        cfg.model.backbone.adapter.update(adapter)
    return MODELS.build(cfg.model), cfg


def trained(demo_run):
    model, cfg = build(demo_run['cfg'])
    with mmengine_safe_globals():
        load_checkpoint(model, demo_run['ckpt'], map_location='cpu', strict=True)
    return model, cfg


def fresh_with_base(demo_run, **adapter):
    model, cfg = build(demo_run['cfg'], **adapter)
    with mmengine_safe_globals():
        model.init_weights()  # the pretrained base weights, B = 0
    return model


def test_run_wrote_adapter_checkpoint_that_restores_exactly(demo_run):
    path = demo_run['work'] / 'adapters_last.safetensors'
    assert path.is_file()
    ref, _ = trained(demo_run)
    model = fresh_with_base(demo_run)
    assert not torch.equal(model.roi_head.bbox_head.fc_cls.weight,
                           ref.roi_head.bbox_head.fc_cls.weight)
    meta = load_adapter_checkpoint(model, str(path))
    assert 'LieRAFreezeHook' in meta['config']
    a, b = model.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full = os.path.getsize(demo_run['ckpt'])
    assert os.path.getsize(path) < full / 2


def test_roundtrip_holds_only_what_training_changed(demo_run, tmp_path):
    model, cfg = trained(demo_run)
    path = tmp_path / 'a.safetensors'
    n = save_adapter_checkpoint(model, str(path), config=cfg.pretty_text)
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        keys = set(f.keys())
    assert len(keys) == n
    assert all(not k.startswith('backbone.') or k.endswith(('lora_A', 'lora_B')) for k in keys)
    assert {f'{name}.{f}' for name in adapter_layers(model.backbone)
            for f in ('lora_A', 'lora_B')} <= {k[len('backbone.'):] for k in keys}
    assert any(k.startswith('roi_head.') for k in keys) and any(k.startswith('neck.')
                                                               for k in keys)
    assert not any(k.endswith('depthwise_conv.weight') for k in keys)


def _assert_untouched(model, before):
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('what', ['rank', 'mode', 'arch', 'truncated', 'not_safetensors',
                                  'other_format'])
def test_wrong_file_one_clear_error_nothing_loaded(demo_run, tmp_path, what):
    path = str(demo_run['work'] / 'adapters_last.safetensors')
    if what == 'rank':
        model, msg = fresh_with_base(demo_run, rank=4), 'rank=8 in the file but 4 in the model'
    elif what == 'mode':
        model, msg = fresh_with_base(demo_run, mode='exp'), "mode='taylor' in the file"
    elif what == 'arch':
        cfg = Config.fromfile(demo_run['cfg'])
        cfg.model.backbone.arch = 'femto'
        cfg.model.backbone.init_cfg = None
        cfg.model.neck.in_channels = [48, 96, 192, 384]
        model, msg = MODELS.build(cfg.model), 'does not fit this model'
    else:
        model = fresh_with_base(demo_run)
        bad = tmp_path / 'bad.safetensors'
        data = open(path, 'rb').read()
        if what == 'truncated':
            bad.write_bytes(data[:len(data) // 2])
            msg = 'not a readable safetensors adapter checkpoint'
        elif what == 'not_safetensors':
            torch.save({'x': torch.ones(2)}, bad)
            msg = 'not a readable safetensors adapter checkpoint'
        else:
            from safetensors.torch import save_file
            save_file({'x': torch.ones(2)}, str(bad), metadata={'format': 'something'})
            msg = 'not an mmliera adapter checkpoint'
        path = str(bad)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(AdapterCheckpointError, match=msg):
        load_adapter_checkpoint(model, path)
    _assert_untouched(model, before)


def test_merge_and_export_to_plain_mmdet(demo_run, tmp_path):
    out_dir = tmp_path / 'export'
    run([sys.executable, 'tools/merge_adapters.py', demo_run['cfg'], demo_run['ckpt'],
         str(out_dir)])
    plain_cfg = Config.fromfile(str(out_dir / 'config.py'))
    assert plain_cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
    assert 'mmliera' not in plain_cfg.pretty_text
    plain = MODELS.build(plain_cfg.model)
    sd = torch.load(out_dir / 'model.pth', weights_only=True)['state_dict']
    assert not any('lora_' in k for k in sd)
    plain.load_state_dict(sd, strict=True)
    adapted, _ = trained(demo_run)
    plain.eval()
    adapted.eval()
    x = torch.rand(2, 3, 256, 256) * 255
    with torch.no_grad():
        for a, b in zip(adapted.extract_feat(x), plain.extract_feat(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # mmdet's own test tool, without mmliera imported, gives the same COCO mAP
    import mmdet
    mmdet_test = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    script = (
        'import runpy, sys\n'
        f'sys.argv = ["test.py", {str(out_dir / "config.py")!r}, '
        f'{str(out_dir / "model.pth")!r}, "--work-dir", {str(tmp_path / "w")!r}]\n'
        f'runpy.run_path({mmdet_test!r}, run_name="__main__")\n'
        'assert "mmliera" not in sys.modules, "mmliera was imported"\n'
        'print("MMLIERA_NOT_IMPORTED")\n')
    out = run([sys.executable, '-c', script], env=dict(PYTHONPATH=''))
    assert 'MMLIERA_NOT_IMPORTED' in out
    assert maps(out) == maps(demo_run['out'])


def test_export_from_adapter_only_checkpoint(demo_run, tmp_path):
    out_dir = tmp_path / 'export2'
    run([sys.executable, 'tools/merge_adapters.py', demo_run['cfg'],
         str(demo_run['work'] / 'adapters_last.safetensors'), str(out_dir)])
    a = torch.load(out_dir / 'model.pth', weights_only=True)['state_dict']
    run([sys.executable, 'tools/merge_adapters.py', demo_run['cfg'], demo_run['ckpt'],
         str(tmp_path / 'export3')])
    b = torch.load(tmp_path / 'export3' / 'model.pth', weights_only=True)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_safe_load_accepts_mmengine_checkpoints_and_refuses_code(demo_run, tmp_path):
    ck = safe_load(demo_run['ckpt'])
    assert {'meta', 'state_dict', 'optimizer', 'message_hub'} <= set(ck)
    with pytest.raises(Exception, match='weights_only'):
        torch.load(demo_run['ckpt'], weights_only=True)  # what mmengine 0.10.7 hits

    class Evil:

        def __reduce__(self):
            return (os.system, ('echo pwned',))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Evil()}, evil)
    with pytest.raises(Exception, match='system'):
        safe_load(str(evil))


def test_kill_and_resume_is_bit_identical(demo_run, tmp_path):
    cfg = write_cfg(tmp_path / 'resume.py', demo_run['cfg'], """
custom_imports = dict(imports=['mmliera', 'kill_hook'], allow_failed_imports=False)
train_cfg = dict(max_iters=8, val_interval=1000)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8)]
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=3))
custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='KillAfterIterHook')]
""")
    base = [sys.executable, 'tools/train.py', cfg]
    run(base + ['--work-dir', str(tmp_path / 'straight')])
    killed = tmp_path / 'killed'
    out = run(base + ['--work-dir', str(killed)], env=dict(MMLIERA_TEST_KILL_AFTER_ITER='4'),
              expect_fail=True)
    assert 'killed after iteration 4' in out and not (killed / 'iter_8.pth').exists()
    out = run(base + ['--work-dir', str(killed), '--resume'])
    assert 'resumed epoch: 0, iter: 4' in out
    a = safe_load(str(tmp_path / 'straight' / 'iter_8.pth'))['state_dict']
    b = safe_load(str(killed / 'iter_8.pth'))['state_dict']
    trained_keys = [k for k in a if 'lora_' in k or not k.startswith('backbone.')]
    assert any('lora_B' in k for k in trained_keys)
    for k in a:
        assert torch.equal(a[k], b[k]), k
