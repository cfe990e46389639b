"""Several adapters on one base model (AdapterBank, MultiAdapterInferencer, infer --adapters).

The adapters are made here without training: the tiny demo's model (LieRA backbone; neck and
heads train fully) or a whole-detector variant, every trained tensor moved by seeded noise, one
task with the demo's 3 classes and one with 2. Reference: a model loaded with that one file
(``LieRAInferencer``). Tolerance: none for unmerged and 'copy' switching (the same tensors
through the same kernels: equal bits); 'inplace' recomputes W from W' on every switch, so its
predictions are compared to 1e-4 relative (boxes in pixels: 1e-3 px).
"""
import json
import os

import pytest
import torch
from helpers import ROOT, tool_in_process, write_cfg
from mmengine.config import Config
from tiny_demo import tiny_demo_cfg

from mmliera.apis import LieRAInferencer, MultiAdapterInferencer, predict_adapters
from mmliera.apis.model import build_model_from_config
from mmliera.checkpoint import AdapterBank, AdapterBankError, save_adapter_checkpoint
from mmliera.checkpoint.load import load_base_weights
from mmliera.datasets import ensure_synthetic_coco

pytestmark = pytest.mark.slow  # several detectors built and run (~1 min)

TWO = ('disc', 'triangle')
DEMO_DIR = os.path.join(ROOT, 'configs', 'demo')
WHOLE = os.path.join(DEMO_DIR, 'whole_liera_maskrcnn_convnextv2-atto_synthetic.py')
WHOLE_2CLS = os.path.join(DEMO_DIR, 'whole_liera_maskrcnn_convnextv2-atto_synthetic-2cls.py')


def _task_cfg(tmp, name, classes=None, body=''):
    """The tiny demo (every detection kept: score_thr 0), with ``classes`` (2 of the 3)."""
    base = tiny_demo_cfg(tmp)
    extra = 'model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))\n'
    if classes:
        n = len(classes)
        extra = f"""
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)),
             roi_head=dict(bbox_head=dict(num_classes={n}), mask_head=dict(num_classes={n})))
test_dataloader = dict(dataset=dict(metainfo=dict(classes={tuple(classes)!r})))
"""
    return write_cfg(tmp / f'{name}.py', base, extra + body)


def _make_adapter(cfg_path, out, seed, classes=None):
    """An adapter file of ``cfg_path``'s model: base weights, every trained tensor moved."""
    cfg, model = build_model_from_config(cfg_path)
    load_base_weights(model, cfg.get('load_from'))
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    save_adapter_checkpoint(model, str(out), config=cfg.pretty_text, classes=classes)
    return str(out)


@pytest.fixture(scope='module')
def tasks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('multi')
    three = _task_cfg(tmp, 'three')
    two = _task_cfg(tmp, 'two', TWO)
    files = dict(
        three=_make_adapter(three, tmp / 'three.safetensors', 1),
        two=_make_adapter(two, tmp / 'two.safetensors', 2),
        three_b=_make_adapter(three, tmp / 'three_b.safetensors', 3))
    ensure_synthetic_coco(str(tmp / 'data'), dict(train=8, val=4), image_size=256)
    images = [str(tmp / 'data' / 'val' / f'{i:06d}.jpg') for i in range(2)]
    configs = dict(three=three, two=two, three_b=three)
    refs = {}
    for name, path in files.items():
        inf = LieRAInferencer(configs[name], path, device='cpu')
        refs[name] = _raw(inf, images)
        refs[name + ':classes'] = list(inf.model.dataset_meta['classes'])
    return dict(tmp=tmp, cfg=three, two_cfg=two, files=files, images=images, refs=refs)


def _raw(inferencer, images):
    out = inferencer(images, return_datasamples=True, no_save_vis=True)['predictions']
    return [(s.pred_instances.bboxes.clone(), s.pred_instances.scores.clone(),
             s.pred_instances.labels.clone(), s.pred_instances.masks.clone()) for s in out]


def _same(got, want, exact=True):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[0].shape[0] > 0, 'no detections: nothing compared'
        if exact:
            for a, b in zip(g, w):
                assert torch.equal(a, b)
        else:
            torch.testing.assert_close(g[0], w[0], rtol=1e-4, atol=1e-3)
            torch.testing.assert_close(g[1], w[1], rtol=1e-4, atol=1e-5)
            assert torch.equal(g[2], w[2])


@pytest.mark.parametrize('merge', [None, 'copy', 'inplace'])
def test_each_adapter_predicts_as_a_model_loaded_with_it_alone(tasks, merge):
    """Any load order, after switching back and forth, each adapter's predictions (and class
    names) are those of a model loaded with that file alone."""
    files, refs, images = tasks['files'], tasks['refs'], tasks['images']
    order = ['two', 'three', 'three_b'] if merge != 'copy' else ['three_b', 'two', 'three']
    inf = MultiAdapterInferencer(
        tasks['cfg'], {n: files[n]
                       for n in order}, device='cpu', merge=merge)
    assert inf.adapters == order and inf.active_adapter == order[0]
    for name in order + order[::-1] + ['two', 'three', 'two']:
        inf.set_adapter(name)
        _same(_raw(inf, images), refs[name], exact=merge != 'inplace')
        assert list(inf.model.dataset_meta['classes']) == refs[name + ':classes']
        assert list(inf.visualizer.dataset_meta['classes']) == refs[name + ':classes']


def test_base_only_and_the_memory_an_adapter_adds(tasks, tmp_path):
    """The base alone equals a model with no adapter file; the bank holds each adapter's
    tensors once, in memory of its own (the process grows by their size; the file may change
    afterwards), and the base's frozen weights are shared whatever is active."""
    import psutil
    cfg, model = build_model_from_config(tasks['cfg'])
    load_base_weights(model, cfg.get('load_from'))
    model.eval()
    frozen = {n: p.data_ptr() for n, p in model.named_parameters() if not p.requires_grad}
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        plain = model.extract_feat(x)
    bank = AdapterBank(model, config=cfg)
    copies = {}
    for name, path in tasks['files'].items():
        copies[name] = tmp_path / f'{name}.safetensors'
        copies[name].write_bytes(open(path, 'rb').read())
    rss = psutil.Process().memory_info().rss
    for name, path in copies.items():
        bank.load(name, str(path))
    grown = psutil.Process().memory_info().rss - rss
    sizes = {n: bank.nbytes(n) for n in bank.names}
    held = sum(sizes.values())
    # (no lower bound: memory the fixture's models freed is reused without growing the RSS)
    assert grown <= held + 16 * 2**20, (grown, held)
    trained = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    buffers = sum(t.numel() * t.element_size() for t in bank._adapters['three'].tensors.values()
                  if not isinstance(t, torch.nn.Parameter))
    assert sizes['three'] == trained + buffers  # exactly its tensors
    for path in copies.values():  # the files overwritten: the bank does not read them again
        path.write_bytes(bytes(path.stat().st_size))
    bank.set('two')
    with torch.no_grad():
        adapted = model.extract_feat(x)
        with bank.base_only():
            base = model.extract_feat(x)
    assert bank.active == 'two'
    for a, b, c in zip(plain, base, adapted):
        assert torch.equal(a, b) and not torch.allclose(a, c)
    alone = LieRAInferencer(tasks['two_cfg'], tasks['files']['two'], device='cpu')
    with torch.no_grad():
        for a, c in zip(alone.model.extract_feat(x), adapted):
            assert torch.equal(a, c)
    assert {n: p.data_ptr() for n, p in model.named_parameters() if not p.requires_grad} == frozen


def test_files_that_do_not_fit_the_base_are_refused_whole(tasks, tmp_path):
    """Other ranks, another config, other base weights, a name used twice or unknown: one
    error naming the file (or the names) and the difference; the bank is as it was."""
    files = tasks['files']
    rank4 = _task_cfg(tmp_path, 'rank4', body="model = dict(backbone=dict(adapter=dict(rank=4)))\n")
    other_cfg = _task_cfg(
        tmp_path, 'fpn', body='model = dict(neck=dict(num_outs=4), rpn_head=dict())\n')
    other_base = tmp_path / 'other_base.pth'
    sd = torch.load(Config.fromfile(tasks['cfg']).model.backbone.init_cfg.checkpoint)
    sd['state_dict'] = {k: v + 0.01 for k, v in sd['state_dict'].items()}
    torch.save(sd, other_base)
    moved = _task_cfg(
        tmp_path,
        'moved',
        body=f"model = dict(backbone=dict(init_cfg=dict(checkpoint='{other_base}')))\n")
    bad = {
        'rank4': (_make_adapter(rank4, tmp_path / 'r4.safetensors', 0), 'rank=4'),
        'other_cfg': (_make_adapter(other_cfg, tmp_path / 'fpn.safetensors',
                                    0), 'model.neck.num_outs: 4 in the file, 5 here'),
        'other_base': (_make_adapter(moved, tmp_path / 'moved.safetensors',
                                     0), 'made from other base weights'),
    }
    cfg, model = build_model_from_config(tasks['cfg'])
    load_base_weights(model, cfg.get('load_from'))
    bank = AdapterBank(model, config=cfg)
    bank.load('three', files['three'])
    bank.set('three')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, (path, why) in bad.items():
        with pytest.raises(AdapterBankError) as e:
            bank.load(name, path)
        msg = str(e.value)
        assert path in msg and why in msg and '\n' not in msg, msg
    with pytest.raises(AdapterBankError, match=r"'three' is used twice .*loaded names: three$"):
        bank.load('three', files['two'])
    with pytest.raises(AdapterBankError, match="no adapter named 'nine'; loaded: three"):
        bank.set('nine')
    with pytest.raises(AdapterBankError, match='give a non-empty name'):
        bank.load('a/b', files['two'])
    assert bank.names == ['three'] and bank.active == 'three'
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_inplace_merge_keeps_no_copy_and_unmerges_up_to_rounding():
    """merge(keep_original=False) keeps no second weight; unmerge gives W back within a few
    ulp (taylor, exp, lora), also after 100 merge/unmerge cycles; DoRA refuses it."""
    from mmliera.models.peft import LieRAConv2d
    torch.manual_seed(0)
    for mode in ('taylor', 'exp', 'lora'):
        layer = LieRAConv2d(16, 32, 3, padding=1, rank=4, mode=mode)
        with torch.no_grad():
            layer.lora_B.normal_(0, 0.1)
        w = layer.weight.detach().clone()
        ptr = layer.weight.data_ptr()
        layer.merge(keep_original=False)
        assert layer.weight.data_ptr() == ptr and layer._unmerged_weight is None
        assert not torch.equal(layer.weight, w)
        layer.unmerge()
        first = (layer.weight - w).abs().max().item()
        for _ in range(99):
            layer.merge(keep_original=False)
            layer.unmerge()
        drift = ((layer.weight - w).abs() / w.abs().clamp_min(1e-3)).max().item()
        assert first <= 4 * torch.finfo(torch.float32).eps * w.abs().max().item(), (mode, first)
        assert drift < 1e-4, (mode, drift)
    dora = LieRAConv2d(8, 8, 3, rank=2, dora=True)
    with pytest.raises(ValueError, match='cannot be undone with DoRA'):
        dora.merge(keep_original=False)


def _serve(cfg, files, images, out):
    """tools/infer.py CONFIG --adapters NAME=FILE ... (every detection kept); (stdout, {name:
    predictions.json})."""
    code, stdout, stderr = tool_in_process('infer', cfg, '--adapters',
                                           *(f'{n}={f}'
                                             for n, f in files.items()), *images, '--out-dir',
                                           str(out), '--score-thr', '0.0', '--device', 'cpu')
    assert code == 0, stderr
    return stdout, {n: json.loads((out / n / 'predictions.json').read_text()) for n in files}


def test_infer_tool_serves_several_adapters(tasks, tmp_path):
    """tools/infer.py CONFIG --adapters NAME=FILE ... IMAGES: pictures and predictions.json
    per adapter under OUT_DIR/NAME/, each with its own class names; mistakes: one error line."""
    files, out = tasks['files'], tmp_path / 'serve'
    stdout, served = _serve(tasks['cfg'], {n: files[n]
                                           for n in ('three', 'two')}, tasks['images'], out)
    for name, classes in (('three', ['square', 'disc', 'triangle']), ('two', list(TWO))):
        data = served[name]
        assert data['classes'] == classes and data['adapter'] == name
        assert sorted(os.listdir(out / name / 'vis')) == ['000000.jpg', '000001.jpg']
        labels = {label for e in data['images'] for label in e['label_names']}
        assert labels and labels <= set(classes)
    assert 'three' in stdout and 'two' in stdout
    # mistakes: one error line each
    for args, msg in (
        ([f'three={files["three"]}', f'three={files["two"]}'], 'is used twice'),
        (['three'], 'NAME=FILE'),
        ([f'x={tasks["tmp"]}/none.safetensors'], 'no such adapter checkpoint'),
    ):
        code, _, stderr = tool_in_process('infer', tasks['cfg'], '--adapters', *args,
                                          *tasks['images'], '--out-dir', str(out / 'bad'))
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1 and msg in lines[0], stderr
    code, _, stderr = tool_in_process('infer', tasks['cfg'], files['three'], *tasks['images'],
                                      '--merge', 'copy', '--out-dir', str(out / 'bad'))
    assert code == 1 and '--merge copy applies to --adapters' in stderr, stderr


def _whole_task_cfg(tmp, name, start, classes=None):
    """The whole-detector demo (configs/demo/whole_liera_*.py) on the tiny data, from
    ``start``, every detection kept; with ``classes``: the 2-class task's config."""
    base = WHOLE_2CLS if classes else WHOLE
    data = tmp / 'data'
    return write_cfg(
        tmp / f'{name}.py', base, f"""
data_root = '{data}/'
synthetic = dict(image_size=256, splits=dict(train=8, val=4))
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))
load_from = '{start}'
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, synthetic=synthetic))
test_dataloader = val_dataloader
custom_hooks = [dict(type='LieRAFreezeHook')]
""")


def test_whole_detector_adapters_of_different_classes(tasks, tmp_path):
    """Whole-detector adapters (LieRADetector: factors in every part, class layers) of a 3-
    and a 2-class task on one base detector: the tool serves both, each as loaded alone."""
    from mmliera.apis.model import build_model
    pretrain = Config.fromfile(
        os.path.join(DEMO_DIR, 'full_maskrcnn_convnextv2-atto_synthetic-'
                     'pretrain.py'))
    torch.manual_seed(0)
    detector = build_model(pretrain)
    start = tmp_path / 'start_detector.pth'
    drop = ('roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg',
            'roi_head.mask_head.conv_logits')
    torch.save(
        dict(state_dict={
            k: v
            for k, v in detector.state_dict().items() if not k.startswith(drop)
        }), start)
    (tmp_path / 'data').symlink_to(tasks['tmp'] / 'data')
    cfgs = dict(
        shapes=_whole_task_cfg(tmp_path, 'shapes', start),
        discs=_whole_task_cfg(tmp_path, 'discs', start, TWO))
    files = {
        n: _make_adapter(c, tmp_path / f'{n}.safetensors', i)
        for i, (n, c) in enumerate(cfgs.items())
    }
    inf = MultiAdapterInferencer(
        cfgs['shapes'], {
            'discs': files['discs'],
            'shapes': files['shapes']
        }, device='cpu')
    for name in ('shapes', 'discs', 'shapes'):
        inf.set_adapter(name)
        alone = LieRAInferencer(cfgs[name], files[name], device='cpu')
        _same(_raw(inf, tasks['images']), _raw(alone, tasks['images']))
    out = tmp_path / 'serve'
    _, served = _serve(cfgs['discs'], files, tasks['images'], out)
    for name, classes in (('shapes', ['square', 'disc', 'triangle']), ('discs', list(TWO))):
        data = served[name]
        assert data['classes'] == classes
        labels = {label for e in data['images'] for label in e['label_names']}
        assert labels and labels <= set(classes)


def test_predict_adapters_writes_one_folder_per_adapter(tasks, tmp_path):
    inf = MultiAdapterInferencer(tasks['cfg'], tasks['files'], device='cpu')
    inf.set_adapter('two')
    results = predict_adapters(inf, tasks['images'][:1], str(tmp_path), score_thr=0.0)
    assert list(results) == ['three', 'two', 'three_b'] and inf.active_adapter == 'two'
    for name in results:
        assert (tmp_path / name / 'predictions.json').is_file()
