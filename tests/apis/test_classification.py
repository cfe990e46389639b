"""Classification in mmpretrain's scope: mmliera's types without prefixes, the VTAB-1k configs
of the paper's Table 1 (counts, task choice, missing data), and a tiny classification task
trained through tools/train.py and tested through tools/test.py."""
import os
import re
import sys

import numpy as np
import pytest
import torch
from helpers import (ROOT, assert_adapters_trained, runner_output, tool_in_process, tool_output,
                     write_cfg)
from mmengine.config import Config

VTAB = os.path.join(ROOT, 'configs', 'vtab1k')
BASE = os.path.join(VTAB, '_base_convnextv2-b_vtab1k.py')
TABLE_1 = {2: 1.90, 4: 3.70, 8: 7.30, 16: 14.48}  # # param (M), LoRA and LieRA alike


@pytest.fixture
def pretrain_scope():
    from mmengine.registry import DefaultScope, init_default_scope
    init_default_scope('mmpretrain')
    yield
    DefaultScope._instance_dict.clear()


def _atto(**kw):
    return dict(
        arch='atto', use_grn=True, layer_scale_init_value=0., gap_before_final_norm=True, **kw)


def test_mmliera_types_resolve_in_mmpretrains_scope_without_prefixes(pretrain_scope):
    from mmpretrain.registry import HOOKS, MODELS, RUNNERS
    for registry, names in ((MODELS, ['LieRAConvNeXt', 'LieRA']),
                            (HOOKS, ['LieRAFreezeHook',
                                     'AdapterCheckpointHook']), (RUNNERS, ['LieRARunner'])):
        for name in names:
            assert registry.get(name) is not None, (registry.scope, name)
    classifier = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='LieRAConvNeXt', adapter=dict(rank=2), **_atto()),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=320)))
    # ``type='LieRA'`` resolves its inner ``ConvNeXt`` in mmpretrain's registry (no prefix)
    wrapped = MODELS.build(
        dict(type='LieRA', backbone=dict(type='ConvNeXt', **_atto()), adapter=dict(rank=2)))
    assert type(wrapped).__name__ == 'ConvNeXt'
    assert [n for n, _ in wrapped.named_parameters()
            ] == [n for n, _ in classifier.backbone.named_parameters()]
    trains = [n for n, p in classifier.named_parameters() if p.requires_grad]
    adapters = [n for n in trains if n.startswith('backbone.')]  # the backbone is built frozen
    assert adapters and all(n.endswith(('lora_A', 'lora_B')) for n in adapters)
    assert set(trains) - set(adapters) == {'head.fc.weight', 'head.fc.bias'}
    with pytest.raises(KeyError, match="not registered in mmpretrain's MODELS.*'mmdet.ResNet'"):
        MODELS.build(dict(type='LieRA', backbone=dict(type='NoSuchNet')))


def _vtab(name):
    return os.path.join(VTAB, name)


def test_every_vtab_config_parses_and_the_task_comes_from_the_environment(monkeypatch):
    names = sorted(f for f in os.listdir(VTAB) if f.endswith('.py') and not f.startswith('_'))
    assert len(names) == 13  # LoRA and LieRA at 4 ranks, DoRA/PiSSA +- LieRA, full
    for name in names:
        cfg = Config.fromfile(_vtab(name))
        assert cfg.default_scope == 'mmpretrain' and cfg.model.head.num_classes == 100, name
        assert cfg.work_dir == f'./work_dirs/vtab1k/cifar/{name.split("_convnextv2")[0]}', name
        assert cfg.train_dataloader.dataset.ann_file == 'train800val200.txt'
        assert cfg.test_dataloader.dataset.ann_file == 'test.txt'
    monkeypatch.setenv('VTAB_TASK', 'dtd')
    cfg = Config.fromfile(_vtab('liera_r8_convnextv2-b_vtab1k.py'))
    assert cfg.model.head.num_classes == cfg.model.data_preprocessor.num_classes == 47
    assert cfg.train_dataloader.dataset.data_root == 'data/vtab-1k/dtd/'
    assert cfg.work_dir == './work_dirs/vtab1k/dtd/liera_r8'
    assert cfg.model.backbone.adapter == dict(
        mode='taylor', rank=8, targets=[r'downsample_layers\..*', 'depthwise_conv'])
    monkeypatch.setenv('VTAB_TASK', 'cifar100')
    code, _, err = tool_in_process('train', _vtab('lora_r2_convnextv2-b_vtab1k.py'))
    assert code == 1 and err.startswith("error: VTAB_TASK='cifar100' is not a VTAB-1k task; "
                                        'use one of cifar, caltech101, dtd'), err


def test_missing_vtab_data_is_one_error_naming_the_files(tmp_path):
    code, _, err = tool_in_process('train', _vtab('liera_r8_convnextv2-b_vtab1k.py'), '--work-dir',
                                   tmp_path / 'w')
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert 'data/vtab-1k/cifar/train800val200.txt, data/vtab-1k/cifar/test.txt' in err
    assert 'docs/classification.md' in err and os.path.isfile(
        os.path.join(ROOT, 'docs', 'classification.md'))
    assert not (tmp_path / 'w').exists()


@pytest.mark.slow  # four ConvNeXt-V2-B classifiers
def test_vtab_counts_match_table_1_with_the_head_included():
    """Trainable parameters as training freezes them: the adapters of every Conv2d (stem,
    downsampling, depthwise 7x7) plus the 100-class head give Table 1's counts to 0.01 M;
    without the head they are 0.10 M short, with the pointwise Linear layers adapted too
    (the COCO configs' targets) 1.2-2.8 M over."""
    from mmliera.apis.model import build_model_from_config
    from mmliera.engine.hooks.freeze_hook import freeze_hooks_of
    found = {}
    for rank in TABLE_1:
        cfg, model = build_model_from_config(_vtab(f'liera_r{rank}_convnextv2-b_vtab1k.py'))
        for hook in freeze_hooks_of(cfg.custom_hooks):
            hook.policy.apply(model)
        trains = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
        head = sum(v for n, v in trains.items() if n.startswith('head.'))
        assert head == 1024 * 100 + 100 and set(trains) - {'head.fc.weight', 'head.fc.bias'} \
            == {n for n in trains if re.search(r'lora_[AB]$', n)}
        found[rank] = sum(trains.values())
        assert abs(found[rank] / 1e6 - TABLE_1[rank]) <= 0.0101, (rank, found[rank])
        assert abs((found[rank] - head) / 1e6 - TABLE_1[rank]) > 0.09  # not without the head
    out = tool_output('count_params', _vtab('liera_r2_convnextv2-b_vtab1k.py'))
    assert re.search(r'^head\s+102,500\s+0\s+0\s+trained fully$', out, re.M), out
    assert re.search(rf'^total\s+{found[2]:,}\s', out, re.M), out
    per_rank = (found[16] - found[2]) / 14
    assert all(found[r] == 102_500 + per_rank * r for r in TABLE_1)  # linear in the rank
    for rank in TABLE_1:  # LoRA: the same factors and head, only the update rule differs
        lora, liera = (
            Config.fromfile(_vtab(f'{m}_r{rank}_convnextv2-b_vtab1k.py')).model
            for m in ('lora', 'liera'))
        assert lora.backbone.adapter.pop('mode') == 'lora'
        assert liera.backbone.adapter.pop('mode') == 'taylor' and lora == liera


# ---------------------------------------------------------------------------------------------
# a tiny classification task through the tools


def _write_task(root, n_train=8, n_test=8, size=32):
    """Two classes (red or blue square on a grey field) in the VTAB-1k layout under ``root``."""
    import cv2
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True)
    for split, n in (('train800val200', n_train), ('test', n_test)):
        lines = []
        for i in range(n):
            label = i % 2
            img = np.full((size, size, 3), 128, np.uint8)
            x, y = rng.integers(0, size // 2, 2)
            img[y:y + size // 2, x:x + size // 2] = (0, 0, 255) if label == 0 else (255, 0, 0)
            name = f'images/{split}_{i}.png'
            cv2.imwrite(str(root / name), img)
            lines.append(f'{name} {label}')
        (root / f'{split}.txt').write_text('\n'.join(lines) + '\n')


def _atto_backbone_file(path):
    """An mmpretrain-format ConvNeXt-V2-atto classifier checkpoint (random, seed 0)."""
    from mmpretrain.models import ConvNeXt
    torch.manual_seed(0)
    m = ConvNeXt(**_atto())
    torch.save(
        dict(meta=dict(), state_dict={
            f'backbone.{k}': v
            for k, v in m.state_dict().items()
        }), str(path))
    return {f'backbone.{k}': v for k, v in m.state_dict().items()}


@pytest.fixture(scope='module')
def tiny_cls(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cls')
    _write_task(tmp / 'task')
    start = _atto_backbone_file(tmp / 'atto.pth')
    pipeline = ("[dict(type='LoadImageFromFile'), dict(type='Resize', scale=(32, 32)), "
                "dict(type='PackInputs')]")
    cfg = write_cfg(
        tmp / 'tiny_cls.py', _vtab('liera_r8_convnextv2-b_vtab1k.py'), f"""
data_root = '{tmp / 'task'}/'
model = dict(
    backbone=dict(arch='atto', drop_path_rate=0., adapter=dict(rank=4),
                  init_cfg=dict(checkpoint='{tmp / 'atto.pth'}')),
    head=dict(num_classes=2, in_channels=320),
    data_preprocessor=dict(num_classes=2))
loader = dict(batch_size=4, num_workers=0, persistent_workers=False,
              dataset=dict(data_root=data_root, pipeline={pipeline},
                           metainfo=dict(classes=['red', 'blue'])))
train_dataloader = loader
test_dataloader = loader
val_dataloader = loader
optim_wrapper = dict(optimizer=dict(lr=1e-2))
param_scheduler = []
train_cfg = dict(max_epochs=3, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
""")
    work = tmp / 'work'
    out = runner_output('train', cfg, '--work-dir', work)
    return dict(
        cfg=cfg, work=work, out=out, start=start, ckpt=work / 'epoch_3.pth', task=tmp / 'task')


@pytest.mark.slow
def test_tiny_task_trains_only_adapters_and_head_and_tests(tiny_cls, tmp_path):
    out = tiny_cls['out']
    assert 'LieRA freezing policy in force' in out and 'Epoch(train) [3][2/2]' in out
    assert re.search(r'accuracy/top1: [\d.]+', out), out[-3000:]
    from mmliera.checkpoint.safe_load import safe_load
    state = safe_load(str(tiny_cls['ckpt']))['state_dict']
    for k, v in tiny_cls['start'].items():  # every frozen backbone tensor as it was loaded
        assert torch.equal(state[k], v), k
    from mmliera.apis.model import build_model_from_config
    _, model = build_model_from_config(tiny_cls['cfg'])
    model.load_state_dict(state, strict=True)
    assert_adapters_trained(model.backbone, torch.rand(1, 3, 32, 32))
    tested = runner_output('test', tiny_cls['cfg'], tiny_cls['ckpt'], '--work-dir', tmp_path)
    top1 = re.findall(r'accuracy/top1: ([\d.]+)', tested)
    assert top1 and top1[-1] == re.findall(r'accuracy/top1: ([\d.]+)', out)[-1]


@pytest.mark.slow  # a 2-process job
def test_two_process_run_trains_and_ends_cleanly(tiny_cls, tmp_path):
    """tools/dist_train.sh on the tiny task (2 CPU ranks, gloo): it trains the adapters and head,
    keeps every frozen tensor, and every rank ends cleanly (no rank aborts at exit)."""
    from helpers import free_port, run
    work = tmp_path / 'dist'
    out = run(['bash', 'tools/dist_train.sh', tiny_cls['cfg'], '2', '--work-dir',
               str(work)],
              env=dict(PORT=str(free_port())))
    assert 'GPU number: 2' in out and 'Epoch(train) [3][1/1]' in out  # 8 images, 2 ranks of 4
    assert 'terminate called' not in out
    from mmliera.checkpoint.safe_load import safe_load
    state = safe_load(str(work / 'epoch_3.pth'))['state_dict']
    for k, v in tiny_cls['start'].items():
        assert torch.equal(state[k], v), k
    single = safe_load(str(tiny_cls['ckpt']))['state_dict']
    moved = [k for k in state if k.endswith('lora_B') or k.startswith('head.')]
    assert moved and all(not torch.equal(state[k], torch.zeros_like(state[k]))
                         for k in moved if k.endswith('lora_B'))
    assert any(not torch.equal(state[k], single[k]) for k in moved)  # another batch split


@pytest.mark.slow  # an export and a process without mmliera
def test_export_gives_a_plain_classifier_with_the_same_logits(tiny_cls, tmp_path):
    """tools/model_converters/merge_adapters.py on the tiny run: a plain mmpretrain ImageClassifier
    (config +
    weights) that a process without mmliera builds and loads; its logits equal the adapted
    model's (merged weights are W' rounded once to float32: 1e-5)."""
    from helpers import run
    out_dir = tmp_path / 'export'
    tool_output('merge_adapters', tiny_cls['cfg'], tiny_cls['ckpt'], out_dir)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    torch.save(x, tmp_path / 'x.pth')
    script = f"""
import sys, torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile({str(out_dir / 'config.py')!r})
init_default_scope(cfg.default_scope)
from mmpretrain.registry import MODELS
model = MODELS.build(cfg.model)
state = torch.load(cfg.load_from, weights_only=True)['state_dict']
model.load_state_dict(state, strict=True)
model.eval()
with torch.no_grad():
    torch.save(model(torch.load({str(tmp_path / 'x.pth')!r}), mode='tensor'),
               {str(tmp_path / 'plain.pth')!r})
assert 'mmliera' not in sys.modules, 'mmliera was imported'
print(type(model).__name__, type(model.backbone).__name__, 'MMLIERA_NOT_IMPORTED')
"""
    out = run([sys.executable, '-c', script], env=dict(PYTHONPATH=''))
    assert 'ImageClassifier ConvNeXt MMLIERA_NOT_IMPORTED' in out
    from mmliera.apis.model import build_model_from_config
    from mmliera.checkpoint.safe_load import safe_load
    _, adapted = build_model_from_config(tiny_cls['cfg'])
    adapted.load_state_dict(safe_load(str(tiny_cls['ckpt']))['state_dict'], strict=True)
    adapted.eval()
    with torch.no_grad():
        expected = adapted(x, mode='tensor')
    torch.testing.assert_close(torch.load(tmp_path / 'plain.pth'), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_infer_lists_the_top_classes_of_each_image(tiny_cls, tmp_path):
    """tools/infer.py on a classification config: the classes of each image, best first, with
    their names and scores; the first is the model's own prediction; one picture per image."""
    import json

    import mmcv
    images = sorted(str(p) for p in (tiny_cls['task'] / 'images').glob('test_*.png'))[:3]
    out = tool_output('infer', tiny_cls['cfg'], tiny_cls['ckpt'], *images, '--out-dir', tmp_path,
                      '--topk', '5', '--device', 'cpu')
    assert f'3 images: the top 5 classes of each in {tmp_path}/predictions.json' in out
    data = json.loads((tmp_path / 'predictions.json').read_text())
    assert data['classes'] == ['red', 'blue'] and data['topk'] == 5
    from mmliera.apis.model import build_model_from_config
    from mmliera.checkpoint.safe_load import safe_load
    _, model = build_model_from_config(tiny_cls['cfg'])
    model.load_state_dict(safe_load(str(tiny_cls['ckpt']))['state_dict'], strict=True)
    model.eval()
    for img, entry in zip(images, data['images']):
        assert entry['img_path'] == img
        assert sorted(entry['labels']) == [0, 1]  # 5 asked, 2 classes: both, best first
        assert entry['label_names'] == [['red', 'blue'][i] for i in entry['labels']]
        assert entry['scores'] == sorted(entry['scores'], reverse=True)
        assert sum(entry['scores']) == pytest.approx(1, abs=1e-3)  # softmax over both
        bgr = torch.from_numpy(mmcv.imread(img)).permute(2, 0, 1)
        with torch.no_grad():
            batch = model.data_preprocessor(dict(inputs=[bgr]), False)
            scores = model(batch['inputs'], mode='predict')[0].pred_score
        assert entry['labels'][0] == int(scores.argmax())
        assert entry['scores'][0] == pytest.approx(float(scores.max()), abs=1e-4)
        picture = mmcv.imread(entry['visualization'])
        assert picture is not None and picture.shape[2] == 3
    code, _, err = tool_in_process('infer', tiny_cls['cfg'], tiny_cls['ckpt'], images[0],
                                   '--out-dir', tmp_path / 'x', '--topk', '0')
    assert code == 1 and err.startswith('error: --topk 0: give 1 or more classes per image')


@pytest.mark.slow  # 2 training and 1 test processes
def test_compare_methods_reads_accuracy_and_selects_on_val(tiny_cls, tmp_path):
    """projects/liera_study/tools/compare_methods.py on a classifier: top-1 accuracy read from the
    val and test logs,
    the grid's choice is the best val top-1 (ties: the lower value), the tables and the plot
    name the accuracy."""
    import json
    out_dir = tmp_path / 'out'
    code, out, err = tool_in_process('compare_methods', f'liera={tiny_cls["cfg"]}', '--grid',
                                     'optimizer.lr=0.01,0.03', '--seeds', '0', '--work-dir',
                                     tmp_path / 'w', '--out-dir', out_dir, '--no-diagnostics')
    assert code == 0, (out + err)[-4000:]
    results = json.loads((out_dir / 'results.json').read_text())
    assert results['meta']['metrics'] == ['top1']
    screened = {r['setting_label']: r for r in results['runs'] if r.get('screen')}
    val = {lab: r['val']['top1'] for lab, r in screened.items()}
    assert len(val) == 2 and all(0 <= v <= 100 for v in val.values())
    chosen = min((lab for lab, v in val.items() if v == max(val.values())),
                 key=lambda lab: float(lab.split('=')[1]))
    assert f'liera: chose {chosen} (val top-1 accuracy (%) {val[chosen]:.2f}' in out
    final, = [r for r in results['runs'] if r.get('final')]
    assert final['setting_label'] == chosen and final['status'] == 'ok'
    # the test figure is the test tool's own accuracy (the log: relative to the work dir)
    logged = (tmp_path / 'w' / final['log']).read_text()
    assert 0 <= final['top1'] <= 100 and f'accuracy/top1: {final["top1"]:.4f}' in logged
    assert final['val_curve'][-1][1] == final['val']['top1']
    assert final['backbone_trainable_params'] > 0 and final['params_by_part']['head'] == 642
    table = (out_dir / 'table.md').read_text()
    assert '| top-1 accuracy (%) |' in table and f'{final["top1"]:.2f}' in table
    grid = (out_dir / 'grid.md').read_text()
    assert 'val top-1 accuracy (%)' in grid and 'best val top-1 accuracy (%)' in grid
    assert 'val_top1' in (out_dir / 'results.csv').read_text().splitlines()[0]
    assert (out_dir / 'plot.png').stat().st_size > 10000


def test_pairs_of_accuracies_are_written_in_accuracy_units():
    from projects.liera_study.liera_study.compare.report import pairs_table
    from projects.liera_study.liera_study.compare.stats import paired_differences
    rows = [
        dict(method=m, per_seed=dict(top1={
            0: a,
            1: b
        })) for m, a, b in (('x', 60.0, 64.5), ('y', 55.0, 56.5))
    ]
    diffs = paired_differences(rows, [('x', 'y')])
    assert [(d['metric'], d['diffs']) for d in diffs] == [('top1', [5.0, 8.0])]
    table = pairs_table(diffs)
    assert '| x − y | top-1 accuracy (%) | 2 | +6.50 |' in table and '0: +5.00, 1: +8.00' in table


@pytest.mark.slow  # mmpretrain's own tools, each in a fresh process
def test_mmpretrains_own_train_and_test_tools_run_the_config(tiny_cls, tmp_path):
    """mmpretrain's tools/train.py and tools/test.py (from the installed package) on the tiny
    LieRA classification config, with the config's ``custom_imports=['mmliera']`` as the only
    link: training keeps the frozen weights, testing gives the accuracy our run validated."""
    import subprocess

    import mmpretrain
    tools = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'tools')
    env = dict(os.environ, PYTHONPATH=ROOT)
    work = tmp_path / 'work'

    def run_tool(*args):
        done = subprocess.run([sys.executable, *map(str, args)],
                              cwd=str(tmp_path),
                              env=env,
                              text=True,
                              capture_output=True,
                              timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return done.stdout + done.stderr

    out = run_tool(os.path.join(tools, 'train.py'), tiny_cls['cfg'], '--work-dir', work)
    assert 'LieRA freezing policy in force' in out and 'Epoch(train) [3][2/2]' in out
    from mmliera.checkpoint.safe_load import safe_load
    state = safe_load(str(work / 'epoch_3.pth'))['state_dict']
    for k, v in tiny_cls['start'].items():
        assert torch.equal(state[k], v), k
    assert any(k.endswith('lora_B') and v.abs().sum() > 0 for k, v in state.items())
    # the fixture's run validated its last checkpoint on the same split (val = test here)
    theirs = run_tool(
        os.path.join(tools, 'test.py'), tiny_cls['cfg'], tiny_cls['ckpt'], '--work-dir',
        tmp_path / 'test')
    top1 = [re.findall(r'accuracy/top1: ([\d.]+)', o)[-1] for o in (theirs, tiny_cls['out'])]
    assert top1[0] == top1[1], top1
