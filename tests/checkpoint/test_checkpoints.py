"""Adapter checkpoints (safetensors), merge-and-export to plain mmdet, safe and exact resume."""
import os
import os.path as osp
import sys

import pytest
import torch
from helpers import atto_detector_cfg, maps, mmliera_parts, run, tool_output
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmliera import (AdapterCheckpointError, adapter_layers, load_adapter_checkpoint,
                     save_adapter_checkpoint)
from mmliera.checkpoint import adapter_state_dict
from mmliera.checkpoint.safe_load import mmengine_safe_globals, safe_load


def build(cfg_path, **adapter):
    cfg = Config.fromfile(cfg_path)
    if adapter:
        cfg.model.backbone.adapter.update(adapter)
    return MODELS.build(cfg.model), cfg


def trained(tiny_run):
    model, cfg = build(tiny_run['cfg'])
    with mmengine_safe_globals():
        load_checkpoint(model, tiny_run['ckpt'], map_location='cpu', strict=True)
    return model, cfg


def fresh_with_base(tiny_run, **adapter):
    model, cfg = build(tiny_run['cfg'], **adapter)
    with mmengine_safe_globals():
        model.init_weights()  # the pretrained base weights, B = 0
    return model


@pytest.mark.slow
def test_run_wrote_adapter_checkpoint_that_restores_exactly(tiny_run):
    path = tiny_run['adapters']
    assert osp.isfile(path)
    ref, _ = trained(tiny_run)
    model = fresh_with_base(tiny_run)
    assert not torch.equal(model.roi_head.bbox_head.fc_cls.weight,
                           ref.roi_head.bbox_head.fc_cls.weight)
    meta = load_adapter_checkpoint(model, str(path))
    assert 'LieRAFreezeHook' in meta['config']
    a, b = model.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full = os.path.getsize(tiny_run['ckpt'])
    assert os.path.getsize(path) < full / 2


@pytest.mark.slow
def test_roundtrip_holds_only_what_training_changed(tiny_run, tmp_path):
    model, cfg = trained(tiny_run)
    path = tmp_path / 'a.safetensors'
    n = save_adapter_checkpoint(model, str(path), config=cfg.pretty_text)
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        keys = set(f.keys())
    assert len(keys) == n
    assert all(not k.startswith('backbone.') or k.endswith(('lora_A', 'lora_B')) for k in keys)
    assert {f'{name}.{f}'
            for name in adapter_layers(model.backbone)
            for f in ('lora_A', 'lora_B')} <= {k[len('backbone.'):]
                                               for k in keys}
    assert any(k.startswith('roi_head.') for k in keys)
    assert any(k.startswith('neck.') for k in keys)
    assert not any(k.endswith('depthwise_conv.weight') for k in keys)


def _assert_untouched(model, before):
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('what',
                         ['rank', 'mode', 'arch', 'truncated', 'not_safetensors', 'other_format'])
@pytest.mark.slow
def test_wrong_file_one_clear_error_nothing_loaded(tiny_run, tmp_path, what):
    path = tiny_run['adapters']
    if what == 'rank':
        model, msg = fresh_with_base(tiny_run, rank=4), 'rank=8 in the file but 4 in the model'
    elif what == 'mode':
        model, msg = fresh_with_base(tiny_run, mode='exp'), "mode='taylor' in the file"
    elif what == 'arch':
        cfg = Config.fromfile(tiny_run['cfg'])
        cfg.model.backbone.arch = 'femto'
        cfg.model.backbone.init_cfg = None
        cfg.model.neck.in_channels = [48, 96, 192, 384]
        model, msg = MODELS.build(cfg.model), 'does not fit this model'
    else:
        model = fresh_with_base(tiny_run)
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


@pytest.mark.slow
def test_merge_and_export_to_plain_mmdet(tiny_run, tiny_export, tmp_path):
    out_dir = tiny_export  # merge_adapters.py on the run's checkpoint (conftest.py)
    plain_cfg = Config.fromfile(str(out_dir / 'config.py'))
    assert plain_cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
    assert mmliera_parts(plain_cfg) == []
    assert mmliera_parts(Config.fromfile(tiny_run['cfg']))  # the check sees what it checks
    plain = MODELS.build(plain_cfg.model)
    sd = torch.load(out_dir / 'model.pth', weights_only=True)['state_dict']
    assert not any('lora_' in k for k in sd)
    plain.load_state_dict(sd, strict=True)
    adapted, _ = trained(tiny_run)
    plain.eval()
    adapted.eval()
    x = torch.rand(2, 3, 256, 256) * 255
    with torch.no_grad():
        for a, b in zip(adapted.extract_feat(x), plain.extract_feat(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # mmdet's own test tool, without mmliera imported, gives the same COCO mAP
    import mmdet
    mmdet_test = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    script = ('import runpy, sys\n'
              f'sys.argv = ["test.py", {str(out_dir / "config.py")!r}, '
              f'{str(out_dir / "model.pth")!r}, "--work-dir", {str(tmp_path / "w")!r}]\n'
              f'runpy.run_path({mmdet_test!r}, run_name="__main__")\n'
              'assert "mmliera" not in sys.modules, "mmliera was imported"\n'
              'print("MMLIERA_NOT_IMPORTED")\n')
    out = run([sys.executable, '-c', script], env=dict(PYTHONPATH=''))
    assert 'MMLIERA_NOT_IMPORTED' in out
    # merged weights are W' rounded once to float32 (the adapted model rounds inside the op):
    # features agree to 1e-5, so the mAPs agree up to a detection moving across a threshold
    for plain_map, adapted_map in zip(maps(out), maps(tiny_run['out'])):
        assert abs(plain_map - adapted_map) <= 0.005, (maps(out), maps(tiny_run['out']))


@pytest.mark.slow
def test_export_from_adapter_only_checkpoint(tiny_run, tiny_export, tmp_path):
    out_dir = tmp_path / 'export2'
    tool_output('merge_adapters', tiny_run['cfg'], tiny_run['adapters'], out_dir)
    a = torch.load(out_dir / 'model.pth', weights_only=True)['state_dict']
    b = torch.load(tiny_export / 'model.pth', weights_only=True)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_safe_load_accepts_mmengine_checkpoints_and_refuses_code(tiny_run, tmp_path):
    ck = safe_load(tiny_run['ckpt'])
    assert {'meta', 'state_dict', 'optimizer', 'message_hub'} <= set(ck)
    # mmengine 0.10.7 calls plain torch.load: with mmliera imported the allow-list is
    # registered process-wide at import, so that works as well
    assert 'message_hub' in torch.load(tiny_run['ckpt'], weights_only=True)

    class Evil:

        def __reduce__(self):
            return (os.system, ('echo pwned', ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Evil()}, evil)
    with pytest.raises(Exception, match='system'):
        safe_load(str(evil))


# kill and --resume, bit-identical: tests/engine/test_faults.py (2 processes, by iteration and by
# epoch, through tools/dist_train.sh) and tests/engine/test_fault_units.py (one process, in-process)

# adapter files of a small detector (atto), no training needed


def _small(seed=0, **adapter):
    torch.manual_seed(seed)
    return MODELS.build(atto_detector_cfg(**adapter).model)


def _perturbed(**adapter):
    """A small detector whose trainable tensors (and PiSSA buffers) hold non-initial values."""
    model = _small(seed=1, **adapter)
    with torch.no_grad():
        for n, t in adapter_state_dict(model).items():
            t.add_(torch.randn_like(t) * 0.01)
    return model


@pytest.mark.parametrize(
    'variant',
    [dict(), dict(dora=True),
     dict(init='pissa'),
     dict(dora=True, init='pissa', mode='exp')])
def test_variants_round_trip_exactly(tmp_path, variant):
    src = _perturbed(**variant)
    path = tmp_path / 'a.safetensors'
    save_adapter_checkpoint(src, str(path))
    dst = _small(seed=2, **variant)
    with torch.no_grad():  # the same frozen base weights (the config's pretrained init)
        for n, t in dst.state_dict().items():
            if n.startswith('backbone.') and 'lora_' not in n:
                t.copy_(src.state_dict()[n])
    load_adapter_checkpoint(dst, str(path))
    a, b = src.state_dict(), dst.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    if variant.get('dora'):
        assert any(k.endswith('lora_magnitude') for k in adapter_state_dict(src))
    if variant.get('init') == 'pissa':
        assert any(k.endswith('lora_A0') for k in adapter_state_dict(src))


def _rewrite(src, dst, change_tensors=None, change_meta=None):
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(src), 'pt') as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    save_file(tensors, str(dst), metadata=meta)
    return str(dst)


@pytest.fixture(scope='module')
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('adapters') / 'small.safetensors'
    save_adapter_checkpoint(_perturbed(), str(path))
    return path


NECK = 'neck.lateral_convs.0.conv.weight'


@pytest.mark.parametrize('what,msg', [
    ('missing_file', 'no such adapter checkpoint'),
    ('other_layers',
     r'adapted layers differ \(model only: \[\]; file only: \[.backbone\.stages\.0\.0'),
    ('missing_tensor', rf"trained tensors of the model missing from the file: \['{NECK}'\]"),
    ('extra_tensor', r"tensors only in the file: \['neck\.extra'\]"),
    ('shape', rf'{NECK} has shape \(64, 40, 1, 1\) in the file, \(256, 40, 1, 1\) in the model'),
    ('newer_version', 'has format version 2; this mmliera reads up to 1: upgrade mmliera'),
])
def test_adapter_file_errors_name_the_problem_and_load_nothing(small_file, tmp_path, what, msg):
    model = _small(seed=3)
    path = str(small_file)
    if what == 'missing_file':
        path = str(tmp_path / 'nope.safetensors')
    elif what == 'other_layers':
        model = _small(seed=3, targets=[r'stages\.[123]\..*', 'downsample_layers.*'])
    elif what == 'missing_tensor':
        path = _rewrite(small_file, tmp_path / 'm.safetensors', lambda t: t.pop(NECK))
    elif what == 'extra_tensor':
        path = _rewrite(small_file, tmp_path / 'e.safetensors',
                        lambda t: t.__setitem__('neck.extra', torch.ones(2)))
    elif what == 'shape':
        path = _rewrite(small_file, tmp_path / 's.safetensors',
                        lambda t: t.__setitem__(NECK, torch.ones(64, 40, 1, 1)))
        if 'shape' in what:
            model.neck.lateral_convs[0].conv.weight.data = torch.zeros(256, 40, 1, 1)
    elif what == 'newer_version':
        path = _rewrite(
            small_file,
            tmp_path / 'v.safetensors',
            change_meta=lambda m: m.__setitem__('version', '2'))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(AdapterCheckpointError, match=msg):
        load_adapter_checkpoint(model, path)
    _assert_untouched(model, before)


def test_safe_load_getattr_allow_list(tmp_path):
    """Only a HistoryBuffer's statistic methods may be looked up while unpickling."""
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer

    class Lookup:

        def __init__(self, obj, name, *default):
            self.args = (obj, name, *default)

        def __reduce__(self):
            return getattr, self.args

    buf = HistoryBuffer()
    buf.update(3.0)
    ok = tmp_path / 'ok.pth'
    torch.save({'mean': Lookup(buf, 'mean')}, ok)
    assert safe_load(str(ok))['mean']() == 3.0
    for i, args in enumerate([(buf, '__class__'), (HistoryBuffer, '__init__'), ('cmd', 'format'),
                              (buf, 'mean', None)]):
        bad = tmp_path / f'bad{i}.pth'
        torch.save({'x': Lookup(*args)}, bad)
        with pytest.raises(
                pickle.UnpicklingError, match=rf"refusing getattr\(\w+, "
                rf"'{args[1]}'\)"):
            safe_load(str(bad))
