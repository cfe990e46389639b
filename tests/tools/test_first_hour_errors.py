"""Where a newcomer trips: a checkpoint that does not fit, COCO data that is not there."""
import os

import pytest
import torch
from helpers import PAPER_CONFIG, ROOT, tool_in_process, write_cfg
from mmdet.registry import MODELS
from mmengine.config import Config
from tiny_demo import tiny_demo_cfg

from mmliera.checkpoint.export import plain_config
from mmliera.checkpoint.fit import (CheckpointMismatchError, check_checkpoint_fits,
                                    checkpoint_mismatch)
from mmliera.cli.data_check import DataNotFoundError, check_data, missing_data
from mmliera.models.peft import is_adapter_key

README_HINT = "README's section 'The paper's setting on COCO'"


@pytest.fixture
def tiny(tmp_path):
    cfg = tiny_demo_cfg(tmp_path)
    return cfg, MODELS.build(Config.fromfile(cfg).model)


def _test_tool_fails(cfg, ckpt, tmp_path):
    code, out, err = tool_in_process('test', cfg, ckpt, '--work-dir', tmp_path / 'w')
    assert code == 1 and len(err.strip().splitlines()) == 1, err[-3000:]
    assert 'coco/bbox_mAP' not in out  # nothing evaluated
    return err


def test_test_tool_refuses_a_backbone_only_checkpoint(tiny, tmp_path):
    cfg, _ = tiny
    backbone = str(tmp_path / 'backbone.pth')  # mmpretrain format: backbone.* only
    out = _test_tool_fails(cfg, backbone, tmp_path)
    assert (f'error: checkpoint {backbone} has no weights for backbone.*.lora_* (80), neck.* '
            '(16), roi_head.* (16), rpn_head.* (6) (118 of 262 tensors of the model are '
            'missing; it holds backbone.* (144)); pass a checkpoint written by tools/train.py '
            'with this config') in out
    assert not (tmp_path / 'data').exists()  # failed before the runner built the datasets


def test_test_tool_refuses_a_checkpoint_without_adapters(tiny, tmp_path):
    cfg, model = tiny
    plain = tmp_path / 'plain.pth'
    torch.save(
        dict(state_dict={
            k: v
            for k, v in model.state_dict().items() if not is_adapter_key(k)
        }), plain)
    out = _test_tool_fails(cfg, str(plain), tmp_path)
    assert (f'error: checkpoint {plain} has weights for every layer of the model but none of '
            'its LieRA adapter tensors (backbone.*.lora_* (80)): it is a plain or merged '
            'model') in out


def test_test_tool_refuses_an_adapter_only_file(tiny, tmp_path):
    cfg, _ = tiny
    path = tmp_path / 'adapters_last.safetensors'
    path.write_bytes(b'not read')
    out = _test_tool_fails(cfg, str(path), tmp_path)
    assert f'error: {path} is an adapter-only checkpoint' in out
    assert 'tools/model_converters/merge_adapters.py' in out


def test_mismatch_messages(tiny, tmp_path):
    cfg, model = tiny
    state = model.state_dict()
    assert checkpoint_mismatch(model, state) is None
    ddp = tmp_path / 'ddp.pth'  # keys saved from a DDP-wrapped model
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()}), ddp)
    check_checkpoint_fits(model, str(ddp))
    no_heads = {k: v for k, v in state.items() if not k.startswith(('roi_head.', 'rpn_head.'))}
    msg = checkpoint_mismatch(model, no_heads, 'x.pth')
    assert msg.startswith('checkpoint x.pth has no weights for roi_head.* (16), rpn_head.* (6)')
    other = dict(state)
    other['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(6, 256)
    assert 'roi_head.bbox_head.fc_cls.weight (6, 256) vs (4, 256)' in checkpoint_mismatch(
        model, other, 'x.pth')
    plain_model = MODELS.build(plain_config(Config.fromfile(cfg)).model)
    assert checkpoint_mismatch(plain_model, {
        k: v
        for k, v in state.items() if not is_adapter_key(k)
    }) is None
    assert 'holds LieRA adapter tensors (backbone.*.lora_* (80))' in checkpoint_mismatch(
        plain_model, state, 'x.pth')
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointMismatchError, match='cannot be read as a checkpoint'):
        check_checkpoint_fits(model, str(bad))


@pytest.mark.skipif(
    os.path.isdir(os.path.join(ROOT, 'data', 'coco')), reason='COCO is there: nothing is missing')
@pytest.mark.parametrize('tool', ['train', 'test'])
def test_coco_config_without_data_says_which_files(tool, tmp_path):
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'')
    args = ['configs/liera_maskrcnn_convnextv2.py'] + ([ckpt] if tool == 'test' else [])
    code, stdout, out = tool_in_process(tool, *args, '--work-dir', tmp_path)
    assert code == 1 and len(out.strip().splitlines()) == 1, out[-3000:]
    val = ('data/coco/annotations/instances_val2017.json, data/coco/val2017/')
    expected = (f'data/coco/annotations/instances_train2017.json, data/coco/train2017/, {val}'
                if tool == 'train' else val)
    assert (f'error: configs/liera_maskrcnn_convnextv2.py expects data that is not there '
            f'(relative to {ROOT}): {expected}; put the dataset there as {README_HINT}') in out
    assert 'Epoch(train)' not in stdout


def test_missing_data_through_wrappers_and_partial_data(tmp_path):
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    (root / 'annotations' / 'instances_val2017.json').write_text('{}')
    (root / 'val2017').mkdir()
    cfg = Config.fromfile(
        write_cfg(
            tmp_path / 'c.py', PAPER_CONFIG, f"""
data_root = '{root}/'
train_dataloader = dict(dataset=dict(_delete_=True, type='RepeatDataset', times=2,
                        dataset=dict(type='CocoDataset', data_root=data_root,
                                     ann_file='annotations/instances_train2017.json',
                                     data_prefix=dict(img='train2017/'))))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
"""))
    assert missing_data(cfg, ('val', 'test')) == []
    assert missing_data(cfg, ('train', 'val')) == [
        f'{root}/annotations/instances_train2017.json', f'{root}/train2017/'
    ]
    with pytest.raises(DataNotFoundError, match='train2017/; put the dataset there'):
        check_data(cfg, ('train', ))
    cfg.val_cfg = None  # no validation: its data is not needed
    cfg.val_dataloader.dataset.data_root = str(tmp_path / 'elsewhere')
    assert missing_data(cfg, ('val', )) == []


def test_generated_data_is_not_missing(tmp_path):
    cfg = Config.fromfile(tiny_demo_cfg(tmp_path))
    assert missing_data(cfg, ('train', 'val', 'test')) == []
    assert not (tmp_path / 'data').exists()
