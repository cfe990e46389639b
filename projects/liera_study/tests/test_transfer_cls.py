"""The embedded classification transfer task: its generator, its dataset in mmpretrain's scope,
its configs (what trains in each arm), and the comparison tool's figures for classifiers."""
import json
import os

import numpy as np
import pytest
from helpers import STUDY_CONFIGS, tool_in_process, write_cfg
from mmengine.config import Config

CONFIGS = os.path.join(STUDY_CONFIGS, 'transfer_cls')
SMALL = dict(splits=dict(train=6, val=4), image_size=32)


def test_generator_writes_mmpretrains_list_layout_deterministically(tmp_path):
    from projects.liera_study.liera_study.datasets.transfer_cls import (CLASSES, TASKS,
                                                                        ensure_transfer_cls)
    a, b = tmp_path / 'a', tmp_path / 'b'
    ensure_transfer_cls(str(a), **SMALL)
    ensure_transfer_cls(str(b), **SMALL)
    for split, n in SMALL['splits'].items():
        lines = (a / f'{split}.txt').read_text().splitlines()
        assert len(lines) == n
        for line in lines:
            path, label = line.split()
            assert path.startswith(f'{split}/') and 0 <= int(label) < len(CLASSES)
            assert (a / path).read_bytes() == (b / path).read_bytes()  # same seed, same bytes
    assert (a / 'train.txt').read_text() == (b / 'train.txt').read_text()
    assert not (a / 'test.txt').exists()
    # the source task: the demo's three shapes; another seed gives other images
    src = tmp_path / 'src'
    ensure_transfer_cls(str(src), task='source', seed=1, **SMALL)
    assert {int(ln.split()[1]) for ln in (src / 'train.txt').read_text().splitlines()} <= {0, 1, 2}
    assert TASKS['source'] == ('square', 'disc', 'triangle') and len(TASKS['target']) == 5
    assert (src / 'train' / '000000.jpg').read_bytes() != (a / 'train' / '000000.jpg').read_bytes()


def test_a_folder_made_with_other_settings_is_one_error(tmp_path):
    from projects.liera_study.liera_study.datasets.transfer_cls import ensure_transfer_cls
    ensure_transfer_cls(str(tmp_path / 'd'), **SMALL)
    with pytest.raises(ValueError, match='holds a synthetic dataset made with.*delete the folder'):
        ensure_transfer_cls(str(tmp_path / 'd'), task='source', **SMALL)
    with pytest.raises(ValueError, match="task must be one of source, target, got 'x'"):
        ensure_transfer_cls(str(tmp_path / 'e'), task='x')
    cfg = write_cfg(
        tmp_path / 'stale.py', os.path.join(CONFIGS, 'frozen.py'), f"""
data_root = '{tmp_path / 'd'}/'
synthetic = dict(image_size=32, splits=dict(train=6, val=4, test=4))
train_dataloader = dict(dataset=dict(data_root=data_root, synthetic=synthetic))
""")
    code, out, err = tool_in_process('train', cfg, '--work-dir', tmp_path / 'w')
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith('error:'), err
    assert 'holds a synthetic dataset made with' in lines[0] and 'Traceback' not in out + err
    # a bad setting is one error line too (TaskSettingError), nothing written
    cfg = write_cfg(
        tmp_path / 'bad.py', os.path.join(CONFIGS, 'frozen.py'), f"""
data_root = '{tmp_path / 'f'}/'
synthetic = dict(task='targte', image_size=32, splits=dict(train=6, val=4, test=4))
train_dataloader = dict(dataset=dict(data_root=data_root, synthetic=synthetic))
""")
    code, out, err = tool_in_process('train', cfg, '--work-dir', tmp_path / 'w2')
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1, err
    assert lines[0] == "error: task must be one of source, target, got 'targte'", lines
    assert not (tmp_path / 'f').exists()


def test_dataset_builds_in_mmpretrains_scope_with_the_tasks_classes(tmp_path):
    from mmengine.registry import DefaultScope, init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    try:
        ds = DATASETS.build(
            dict(
                type='TransferClsDataset',
                data_root=str(tmp_path / 'd'),
                synthetic=dict(task='source', **SMALL),
                ann_file='val.txt',
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='PackInputs')]))
    finally:
        DefaultScope._instance_dict.clear()
    assert len(ds) == 4 and ds.metainfo['classes'] == ('square', 'disc', 'triangle')
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 32, 32)
    assert item['data_samples'].gt_label.item() == int(
        (tmp_path / 'd' / 'val.txt').read_text().split()[1])
    from mmliera.cli.data_check import missing_data  # it makes its data: nothing to check
    cfg = Config.fromfile(os.path.join(CONFIGS, 'frozen.py'))
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': str(tmp_path / 'nowhere') + '/'})
    assert missing_data(cfg, ('train', 'val', 'test')) == []


def _trainable(name, **options):
    from projects.liera_study.liera_study.compare.configs import count_trainable
    return count_trainable(os.path.join(CONFIGS, name), options)


def test_each_arm_trains_what_it_says():
    """frozen: the head only; norms: + the backbone's 1-D parameters; LoRA and LieRA at one
    rank: the same number of factors; full: everything. (The start file is not read.)"""
    head = 320 * 5 + 5
    total, backbone, parts = _trainable('frozen.py')
    assert (total, backbone, parts) == (head, 0, dict(head=head))
    _, norms, _ = _trainable('norms.py')
    full_total, full_bb, _ = _trainable('full.py')
    assert 0 < norms < full_bb / 20 and full_total == full_bb + head
    counts = {}
    for r in (2, 8, 32):
        _, lora, _ = _trainable(f'lora_r{r}.py')
        _, liera, _ = _trainable(f'liera_r{r}.py')
        assert lora == liera > 0
        counts[r] = lora
    assert counts[8] == 4 * counts[2] and counts[32] == 4 * counts[8]  # linear in the rank
    cfg = Config.fromfile(os.path.join(CONFIGS, 'liera_r8.py'))
    assert cfg.default_scope == 'mmpretrain' and cfg.model.backbone.adapter.mode == 'taylor'
    assert cfg.test_evaluator == dict(type='Accuracy', topk=(1, ))
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('transfer_cls_study/start_backbone.pth')


def test_metrics_come_from_the_test_evaluator():
    from projects.liera_study.liera_study.compare.errors import ComparisonError
    from projects.liera_study.liera_study.compare.metrics import (DETECTION, by_key, of_config,
                                                                  of_results)
    coco = dict(test_evaluator=dict(type='CocoMetric', metric=['segm', 'bbox']))
    assert of_config(coco) == DETECTION  # bbox first: it selects
    assert [m.key for m in of_config(dict(test_evaluator=dict(type='CocoMetric')))] == ['bbox_mAP']
    acc = of_config(dict(test_evaluator=[dict(type='mmpretrain.Accuracy', topk=(1, 5))]))
    assert [(m.key, m.log_key) for m in acc] == [('top1', 'accuracy/top1'),
                                                 ('top5', 'accuracy/top5')]
    assert by_key(['top1', 'top5']) == acc and of_results({}) == DETECTION
    with pytest.raises(ComparisonError, match="its test_evaluator is VOCMetric; set"):
        of_config(dict(test_evaluator=dict(type='VOCMetric')), 'method x')


def test_read_train_log_takes_the_accuracy_curve(tmp_path):
    from projects.liera_study.liera_study.compare.metrics import by_key
    from projects.liera_study.liera_study.compare.runs import read_train_log
    vis = tmp_path / 'run' / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    records = [
        dict(loss=1.0, time=0.5, iter=10, step=10),
        dict(loss=0.9, time=0.3, iter=20, step=20),
        {
            'accuracy/top1': 40.0,
            'step': 20
        },
        dict(loss=0.5, time=0.3, iter=40, step=40),
        {
            'accuracy/top1': 55.5,
            'step': 40
        },
    ]
    (vis / 'scalars.json').write_text('\n'.join(map(json.dumps, records)) + '\n')
    sec, mem, curve = read_train_log(str(tmp_path / 'run'), by_key(['top1']))
    assert curve == [[20, 40.0], [40, 55.5]] and mem is None
    assert sec == pytest.approx(0.3)
    assert read_train_log(str(tmp_path / 'run'))[2] == []  # no bbox mAP in this log


def test_the_shipped_start_backbone_is_the_pinned_one():
    """The checksum the configs pin is the shipped file's (a re-made file is reported)."""
    cfg = Config.fromfile(os.path.join(CONFIGS, '_base_transfer_cls.py'))
    if not os.path.isfile(cfg.pretrained):
        pytest.skip('the start backbone is not in this checkout')
    from mmliera.checkpoint.digest import weights_sha256
    assert weights_sha256(cfg.pretrained) == cfg.pretrained_sha256
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'PretrainBackboneHook')
    assert hook['config'].endswith('source_pretrain.py')
    src = Config.fromfile(hook['config'])
    assert src.model.backbone.init_cfg is None and src.model.head.num_classes == 3
    assert np.isclose(src.optim_wrapper.optimizer.lr, 2e-3)


def test_comparing_a_classifier_with_a_detector_is_one_error(tmp_path):
    code, out, err = tool_in_process(
        'compare_methods', 'probe=' + os.path.join(CONFIGS, 'frozen.py'),
        'heads=' + os.path.join(STUDY_CONFIGS, 'transfer', 'frozen.py'), '--work-dir',
        tmp_path / 'w')
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and lines == [
        'error: method heads is scored by bbox mAP, segm mAP, method probe by top-1 accuracy '
        '(%); compare methods of one task (the same test_evaluator)'
    ], err
