"""type='LieRADetector': a whole trained detector adapted to new classes. The class layers are
found and re-created, a plain checkpoint loads with one line, only adapters and new layers train
(every frozen tensor bit-identical after training, also with 2 processes), frozen BNs keep their
statistics, adapter files hold every part, export gives a plain detector with the same outputs,
and a RetinaNet config trains."""
import logging
import os
import sys

import pytest
import torch
from helpers import ROOT, STUDY_CONFIGS, run, runner_output, tool_output, write_cfg
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmliera import adapter_layers
from mmliera.models.detectors import LieRADetectorError, class_dependent_layers

SLIM = os.path.join(ROOT, 'configs', 'demo', '_base_slim_maskrcnn_synthetic.py')
RETINA = os.path.join(ROOT, 'configs', 'whole_detector', 'liera_retinanet_r50_whole_balloon.py')
NEW = ['roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg', 'roi_head.mask_head.conv_logits']
ADAPTERS = dict(
    backbone=dict(rank=2), neck=dict(rank=2), rpn_head=dict(rank=2), roi_head=dict(rank=2))


def _slim_model(num_classes=3):
    """The demo's slim Mask R-CNN settings (plain dict) with ``num_classes``."""
    init_default_scope('mmdet')
    model = Config.fromfile(SLIM).model.to_dict()
    model['roi_head']['bbox_head']['num_classes'] = num_classes
    model['roi_head']['mask_head']['num_classes'] = num_classes
    return model


def _adapted(num_classes=3, **kwargs):
    model = _slim_model(num_classes)
    detector = model.pop('type')
    kwargs.setdefault('adapters', ADAPTERS)
    return MODELS.build(ConfigDict(type='LieRADetector', detector=detector, **model, **kwargs))


def _plain_checkpoint(path, num_classes=80, seed=0):
    """A plain mmdet Mask R-CNN checkpoint (the slim demo detector, 80 classes like mmdet's
    model zoo), random weights: {'meta', 'state_dict'}."""
    torch.manual_seed(seed)
    plain = MODELS.build(ConfigDict(_slim_model(num_classes)))
    plain.init_weights()
    with torch.no_grad():  # no exact zeros / ones: every frozen tensor is distinguishable
        for n, p in plain.named_parameters():
            p.add_(torch.randn_like(p) * 0.01)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=[f'c{i}' for i in range(num_classes)])),
            state_dict=state), path)
    return state


def test_class_dependent_layers_of_two_stage_and_one_stage_detectors():
    model = _slim_model()
    built = MODELS.build(ConfigDict(model))
    assert class_dependent_layers(model, built) == NEW
    model['roi_head']['bbox_head']['reg_class_agnostic'] = True
    model['roi_head']['mask_head']['class_agnostic'] = True
    built = MODELS.build(ConfigDict(model))
    assert class_dependent_layers(model, built) == ['roi_head.bbox_head.fc_cls']
    retina = Config.fromfile(RETINA).model.to_dict()
    retina['type'] = retina.pop('detector')
    for key in ('adapters', 'new_layers', 'trainable'):
        retina.pop(key, None)
    built = MODELS.build(ConfigDict(retina))
    assert class_dependent_layers(retina, built) == ['bbox_head.retina_cls']
    no_classes = dict(type='mmpretrain.ConvNeXt', arch='atto')
    assert class_dependent_layers(no_classes, MODELS.build(no_classes)) == []


def test_only_adapters_and_new_layers_train_and_the_detector_stays_mmdets():
    model = _adapted()
    assert type(model).__name__ == 'MaskRCNN' and model.liera_new_layers == NEW
    layers = adapter_layers(model)
    for part in ('backbone', 'neck', 'rpn_head', 'roi_head'):
        assert any(n.startswith(part + '.') for n in layers), part
    assert not any(n.startswith(tuple(NEW)) for n in layers)  # new layers: no adapter
    for n, p in model.named_parameters():
        new = n.rpartition('.')[0] in NEW
        assert p.requires_grad == (new or n.endswith(('lora_A', 'lora_B'))), n
    # a part without adapters is frozen whole; a pattern trains anyway
    model = _adapted(adapters=dict(backbone=dict(rank=2)), trainable=[r'rpn_head\.rpn_conv'])
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {'rpn_head.rpn_conv.weight', 'rpn_head.rpn_conv.bias'} <= trains
    assert not any(n.startswith(('neck.', 'roi_head.bbox_head.shared')) for n in trains)
    # detector=dict(type=...) works the same; explicit new layers; no adapters at all
    spec = _slim_model()
    model = MODELS.build(
        ConfigDict(
            type='LieRADetector',
            detector=spec,
            adapters={},
            new_layers=['roi_head.bbox_head.fc_cls']))
    assert {n
            for n, p in model.named_parameters() if p.requires_grad
            } == {'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias'}


@pytest.mark.parametrize('kwargs, message', [
    (dict(adapters=dict(head=dict(rank=2))), "adapters names the part 'head'"),
    (dict(adapters=dict(neck=dict(rnak=2))), "unknown adapters.neck keys"),
    (dict(new_layers=['roi_head.fc_cls']), "new layer 'roi_head.fc_cls' is not a module"),
    (dict(new_layers=3), "new_layers must be 'auto'"),
    (dict(trainable=['nek']), "trainable pattern 'nek' matches no parameter"),
    (dict(adapters=[2]), 'adapters must be a dict'),
])
def test_bad_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _adapted(**kwargs)


def test_a_part_adapted_twice_is_refused():
    model = _slim_model()
    model['backbone'] = dict(type='LieRA', backbone=model['backbone'], adapter=dict(rank=2))
    detector = model.pop('type')
    with pytest.raises(LieRADetectorError, match="part 'backbone' has LieRA adapters already"):
        MODELS.build(
            ConfigDict(type='LieRADetector', detector=detector, adapters=ADAPTERS, **model))


@pytest.fixture
def a_logger():
    """An MMLogger of this test ('current' while it lives), forgotten afterwards: a later test
    must not log to its stream (pytest's capture, closed by then)."""
    name = 'test_liera_detector_load'
    logger = MMLogger.get_instance(name, log_level='INFO')
    yield logger
    MMLogger._instance_dict.pop(name, None)
    for h in list(logger.handlers):
        logger.removeHandler(h)


def test_plain_checkpoint_loads_naming_only_the_recreated_layers(tmp_path, a_logger):
    from mmengine.runner.checkpoint import load_checkpoint, load_state_dict

    from mmliera.models.adapt import load_reports
    state = _plain_checkpoint(tmp_path / 'plain.pth')
    model = _adapted()
    logger = a_logger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    with load_reports(model):
        load_checkpoint(model, str(tmp_path / 'plain.pth'), logger=logger)
    logger.removeHandler(handler)
    text = [r.getMessage() for r in records]
    assert not any('size mismatch' in t or 'missing keys' in t or 'unexpected key' in t
                   for t in text), text
    recreated = [t for t in text if 'class-dependent layers re-created' in t]
    assert len(recreated) == 1 and all(n in recreated[0] for n in NEW), text
    assert 'fc_cls.weight 81x256 -> 4x256' in recreated[0]
    base = len([k for k in model.state_dict() if 'lora_' not in k])
    loaded = [t for t in text if 'tensors loaded into the frozen weights' in t]
    assert loaded == [
        f'MaskRCNN: {base - 6} of {base} tensors loaded into the frozen weights; '
        f'{2 * len(adapter_layers(model))} adapter tensors '
        f'({len(adapter_layers(model))} LieRA layers) start fresh'
    ]
    now = model.state_dict()
    for k, v in state.items():
        if k.rpartition('.')[0] not in NEW:
            assert torch.equal(now[k], v), k
    # a checkpoint without the class layers (the embedded demo's start): the same one line;
    # one with them at the new shapes (a trained run) loads them, silently
    records.clear()
    logger.addHandler(handler)
    without = {k: v for k, v in now.items() if k.rpartition('.')[0] not in NEW}
    load_state_dict(model, without, logger=logger)
    load_state_dict(model, now, logger=logger)
    logger.removeHandler(handler)
    text = [r.getMessage() for r in records]
    assert len(text) == 1 and 'fc_cls.weight (not in the checkpoint)' in text[0], text


def test_frozen_batch_norms_keep_their_statistics():
    model = _slim_model()
    model['neck']['norm_cfg'] = dict(type='BN', requires_grad=True)
    detector = model.pop('type')
    spec = dict(type='LieRADetector', detector=detector, adapters=dict(neck=dict(rank=2)), **model)
    x = [
        torch.randn(2, 40, 32, 32),
        torch.randn(2, 80, 16, 16),
        torch.randn(2, 160, 8, 8),
        torch.randn(2, 320, 4, 4)
    ]
    frozen = MODELS.build(ConfigDict(spec))
    trained = MODELS.build(ConfigDict(spec, trainable=[r'neck\..*\.bn']))
    for model, keeps in ((frozen, True), (trained, False)):
        model.train()
        bn = model.neck.lateral_convs[0].bn
        before = bn.running_mean.clone()
        model.neck(x)
        assert torch.equal(bn.running_mean, before) == keeps
        assert bn.weight.requires_grad != keeps


# ---------------------------------------------------------------------------------------------
# a real run: the demo's slim Mask R-CNN, a plain 80-class checkpoint adapted to its 3 shapes


def _tiny_config(tmp, load_from):
    return write_cfg(
        tmp / 'whole.py', SLIM, f"""
runner_type = 'LieRARunner'
model = dict(  # the base's MaskRCNN settings stay: only its type becomes the wrapper's
    type='LieRADetector', detector='MaskRCNN',
    adapters=dict(backbone=dict(rank=2), neck=dict(rank=2), rpn_head=dict(rank=2),
                  roi_head=dict(rank=2)))
load_from = '{load_from}'
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = []
optim_wrapper = dict(optimizer=dict(lr=1e-2))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
custom_hooks = [dict(type='LieRAFreezeHook'),
                dict(type='AdapterCheckpointHook', interval=2, by_epoch=False)]
""")


@pytest.fixture(scope='module')
def whole_run(tmp_path_factory):
    """The tiny whole-detector run, as 2 CPU processes (tools/dist_train.sh, gloo): what every
    test below reads (one run serves the single- and the multi-process checks)."""
    from helpers import free_port, hidden_cuda
    tmp = tmp_path_factory.mktemp('whole')
    start = _plain_checkpoint(tmp / 'plain80.pth')
    cfg = _tiny_config(tmp, tmp / 'plain80.pth')
    work = tmp / 'work'
    with hidden_cuda():
        out = run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir',
                   str(work)],
                  env=dict(PORT=str(free_port())))
    return dict(cfg=cfg, start=start, work=work, out=out, ckpt=work / 'iter_2.pth', tmp=tmp)


def _assert_frozen_kept_and_adapters_moved(state, start):
    for k, v in start.items():
        if k.rpartition('.')[0] in NEW:
            assert not torch.equal(state[k][:1], v[:1]) or state[k].shape != v.shape
        else:
            assert torch.equal(state[k], v), f'frozen tensor {k} changed'
    b = [k for k in state if k.endswith('lora_B')]
    assert b and all(state[k].abs().sum() > 0 for k in b), 'an adapter never moved'
    for part in ('backbone.', 'neck.', 'rpn_head.', 'roi_head.'):
        assert any(k.startswith(part) for k in b), part


@pytest.mark.slow  # a 2-process job
def test_training_keeps_every_frozen_tensor_and_moves_every_adapter(whole_run):
    out = whole_run['out']
    assert 'GPU number: 2' in out and 'terminate called' not in out  # 2 ranks, clean ends
    assert 'class-dependent layers re-created' in out and 'size mismatch' not in out
    assert 'LieRA freezing policy in force' in out and 'adapted + ' in out
    from mmliera.checkpoint.safe_load import safe_load
    state = safe_load(str(whole_run['ckpt']))['state_dict']
    _assert_frozen_kept_and_adapters_moved(state, whole_run['start'])
    # the adapter file holds every part and restores the run on top of the plain checkpoint
    from mmliera.apis.model import build_model_from_config
    from mmliera.checkpoint import load_weights
    files = sorted(whole_run['work'].glob('*.safetensors'))
    assert files, list(whole_run['work'].iterdir())
    _, model = build_model_from_config(whole_run['cfg'])
    kind, _ = load_weights(model, str(files[-1]), base=str(whole_run['tmp'] / 'plain80.pth'))
    assert kind == 'adapters'
    now = model.state_dict()
    for k, v in state.items():
        assert torch.equal(now[k], v), k
    # count_params reports per part
    text = tool_output('count_params', whole_run['cfg'])
    assert 'MaskRCNN adapted whole (LieRADetector)' in text and 'roi_head: adapter' in text
    assert 'adapted + ' in text


@pytest.mark.slow  # an export and a process without mmliera
def test_export_gives_a_plain_detector_with_the_same_outputs(whole_run, tmp_path):
    """tools/model_converters/merge_adapters.py: a plain mmdet MaskRCNN that a process without
    mmliera builds
    and loads strictly; backbone + neck features, RPN maps and both RoI heads' outputs on fixed
    boxes equal the adapted detector's (merged weights are W' rounded once to float32:
    rtol 1e-4, atol 1e-5)."""
    out_dir = tmp_path / 'export'
    tool_output('merge_adapters', whole_run['cfg'], whole_run['ckpt'], out_dir)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 8., 8., 60., 60.], [0, 30., 20., 120., 100.]])
    torch.save(dict(x=x, rois=rois), tmp_path / 'inputs.pth')
    script = f"""
import sys, torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile({str(out_dir / 'config.py')!r})
init_default_scope('mmdet')
from mmdet.registry import MODELS
import mmdet.models  # noqa
model = MODELS.build(cfg.model)
model.load_state_dict(torch.load(cfg.load_from, weights_only=True)['state_dict'], strict=True)
model.eval()
inp = torch.load({str(tmp_path / 'inputs.pth')!r})
with torch.no_grad():
    feats = model.extract_feat(inp['x'])
    out = dict(feats=feats, rpn=model.rpn_head(feats),
               bbox=model.roi_head._bbox_forward(feats, inp['rois'])['cls_score'],
               mask=model.roi_head._mask_forward(feats, inp['rois'])['mask_preds'])
torch.save(out, {str(tmp_path / 'plain.pth')!r})
assert 'mmliera' not in sys.modules, 'mmliera was imported'
print(type(model).__name__, 'MMLIERA_NOT_IMPORTED')
"""
    text = run([sys.executable, '-c', script], env=dict(PYTHONPATH=''))
    assert 'MaskRCNN MMLIERA_NOT_IMPORTED' in text
    from mmliera.apis.model import build_model_from_config
    from mmliera.checkpoint.safe_load import safe_load
    _, adapted = build_model_from_config(whole_run['cfg'])
    adapted.load_state_dict(safe_load(str(whole_run['ckpt']))['state_dict'], strict=True)
    adapted.eval()
    with torch.no_grad():
        feats = adapted.extract_feat(x)
        expected = dict(
            feats=feats,
            rpn=adapted.rpn_head(feats),
            bbox=adapted.roi_head._bbox_forward(feats, rois)['cls_score'],
            mask=adapted.roi_head._mask_forward(feats, rois)['mask_preds'])
    torch.testing.assert_close(torch.load(tmp_path / 'plain.pth'), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_retinanet_config_builds_and_trains_two_iterations(tmp_path):
    data = os.environ['MMLIERA_DEMO_DATA']
    pipeline = """[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True), dict(type='PackDetInputs')]"""
    cfg = write_cfg(
        tmp_path / 'retina.py', RETINA, f"""
model = dict(bbox_head=dict(num_classes=3))
load_from = None
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='SyntheticCocoDataset', data_root='{data}/',
                 synthetic=dict(image_size=256), ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), pipeline={pipeline}))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=2))
""")
    out = runner_output('train', cfg, '--work-dir', tmp_path / 'work')
    assert 'Saving checkpoint at 2 iterations' in out, out[-3000:]
    assert 'bbox_head  ' in out and 'adapted + ' in out
    from mmliera.checkpoint.safe_load import safe_load
    state = safe_load(str(tmp_path / 'work' / 'iter_2.pth'))['state_dict']
    assert state['bbox_head.retina_cls.weight'].shape[0] == 9 * 3
    assert any(k.startswith('bbox_head.cls_convs') and k.endswith('lora_B') for k in state)


@pytest.mark.slow
def test_mmdets_init_detector_and_infer_tool_take_the_whole_detector(whole_run, tmp_path):
    """mmdet's own init_detector (it edits cfg.model.backbone, which stays there) builds the
    adapted detector and loads the run's checkpoint; tools/infer.py predicts with it."""
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(whole_run['cfg'], str(whole_run['ckpt']), device='cpu')
    assert type(model).__name__ == 'MaskRCNN' and adapter_layers(model)
    image = (torch.rand(96, 128, 3) * 255).to(torch.uint8).numpy()
    result = inference_detector(model, image)
    assert result.pred_instances.bboxes.shape[1] == 4
    out = tool_output('infer', whole_run['cfg'], whole_run['ckpt'], _image(tmp_path), '--out-dir',
                      tmp_path / 'vis')
    assert 'error' not in out.lower(), out[-2000:]


def _image(tmp_path):
    import cv2
    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, (torch.rand(96, 128, 3) * 255).to(torch.uint8).numpy())
    return path


def test_a_whole_start_detector_is_exported_without_its_class_layers(tmp_path):
    """PretrainBackboneHook(prefix='', drop=class layers) writes the whole detector but its
    class layers: the embedded whole-detector study's start
    (projects/liera_study/configs/transfer/_whole.py)."""
    from mmliera.engine.hooks.pretrain_backbone_hook import export_backbone
    state = _plain_checkpoint(tmp_path / 'run.pth', num_classes=3)
    export_backbone(str(tmp_path / 'run.pth'), str(tmp_path / 'start.pth'), prefix='', drop=NEW)
    written = torch.load(tmp_path / 'start.pth', weights_only=True)['state_dict']
    assert set(written) == {k for k in state if k.rpartition('.')[0] not in NEW}
    assert any(k.startswith('roi_head.bbox_head.shared_fcs') for k in written)
    cfg = Config.fromfile(os.path.join(STUDY_CONFIGS, 'transfer', '_whole.py'))
    hook = cfg.custom_hooks[-1]
    assert (hook.prefix, list(hook.drop)) == ('', NEW) and hook.checkpoint == cfg.load_from


def test_a_missing_load_from_is_one_error_naming_the_download(tmp_path):
    from helpers import tool_in_process
    cfg = write_cfg(
        tmp_path / 'c.py',
        os.path.join(ROOT, 'configs', 'whole_detector', 'liera_maskrcnn_r50_whole_balloon.py'),
        f"load_from = '{tmp_path}/nowhere.pth'\n")
    data = tmp_path / 'data'
    for split in ('train', 'val'):
        (data / split).mkdir(parents=True)
        (data / split / 'annotation_coco.json').write_text('{}')
    code, out, err = tool_in_process('train', cfg, '--cfg-options',
                                     f'train_dataloader.dataset.data_root={data}/',
                                     f'val_dataloader.dataset.data_root={data}/',
                                     f'val_evaluator.ann_file={data}/val/annotation_coco.json')
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith('error:'), err
    assert 'nowhere.pth, which is not there' in lines[0]
    assert 'download it from https://download.openmmlab.com/mmdetection/' in lines[0]
    # a start that a PretrainBackboneHook of the config makes when missing is no error
    from mmliera.cli.data_check import DataNotFoundError, check_load_from
    whole = Config.fromfile(os.path.join(STUDY_CONFIGS, 'transfer', 'whole_liera.py'))
    whole.load_from = whole.custom_hooks[-1].checkpoint = str(tmp_path / 'made_later.pth')
    check_load_from(whole)
    whole.custom_hooks = []
    with pytest.raises(DataNotFoundError, match='made_later.pth, which is not there'):
        check_load_from(whole)
