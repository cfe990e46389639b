"""The capacity study's tasks (projects/liera_study/docs/capacity_study.md): the generators are
deterministic with disjoint splits, every label follows the rule that defines its task, the
teachers lie in their adapter's family, and the configs point at any task with one set of
options."""
import hashlib
import math
import os

import numpy as np
import pytest
import torch
from helpers import STUDY_CONFIGS, tool_in_process, write_cfg
from mmengine.config import Config

from mmliera.utils.errors import UserError
from projects.liera_study.liera_study.datasets import capacity_cls, shift_tasks, teacher_labels

CONFIGS = os.path.join(STUDY_CONFIGS, 'capacity')
HAND_MADE = dict(splits=dict(train=16, val=8, test=8), image_size=64)
# a teacher task needs more train images than the features have dimensions (320) + 1
TEACHER_SPLITS = dict(train=340, val=30, test=30)


@pytest.fixture(scope='module')
def start_ckpt(tmp_path_factory):
    """A start backbone (random ConvNeXt-V2-atto, saved as the classification study saves it)."""
    torch.manual_seed(0)
    model = teacher_labels.atto_backbone()
    model.init_weights()
    path = tmp_path_factory.mktemp('start') / 'start.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in model.state_dict().items()}), path)
    return str(path)


@pytest.fixture(scope='module')
def teacher_task(start_ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp('teacher') / 'teacher_multiplicative'
    capacity_cls.ensure_capacity_task(
        str(root), 'teacher_multiplicative', splits=TEACHER_SPLITS, image_size=32, start=start_ckpt)
    return root


def _digests(root, split):
    lines = (root / f'{split}.txt').read_text().splitlines()
    return [hashlib.sha256((root / ln.split()[0]).read_bytes()).hexdigest() for ln in lines]


def _labels(root, split):
    return np.array([int(ln.split()[1]) for ln in (root / f'{split}.txt').read_text().splitlines()])


@pytest.mark.parametrize('task', ['recolour', 'recolour_opponent', 'gratings', 'gratings_fine'])
def test_hand_made_tasks_are_deterministic_with_disjoint_splits(tmp_path, task):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    capacity_cls.ensure_capacity_task(a, task, **HAND_MADE)
    capacity_cls.ensure_capacity_task(b, task, **HAND_MADE)
    capacity_cls.ensure_capacity_task(c, task, seed=1, **HAND_MADE)
    a, b, c = (tmp_path / n for n in 'abc')
    seen = set()
    for split, n in HAND_MADE['splits'].items():
        assert (a / f'{split}.txt').read_text() == (b / f'{split}.txt').read_text()
        digests = _digests(a, split)
        assert digests == _digests(b, split) and len(digests) == n  # same settings, same bytes
        assert not seen & set(digests)  # no image in two splits
        seen |= set(digests)
        assert set(_labels(a, split)) <= set(range(len(capacity_cls.CLASSES[task])))
    assert _digests(c, 'train') != _digests(a, 'train')  # another seed, other images
    with pytest.raises(ValueError, match='holds a synthetic dataset made with'):
        capacity_cls.ensure_capacity_task(str(a), task, seed=2, **HAND_MADE)


def _recorded_recolour(seed, monkeypatch, make=shift_tasks.make_recolour):
    """``make``'s image and class (a recolour task's), with the colours and shapes it drew."""
    drawn = dict(polygons=[], fills=[], backgrounds=[])
    polygon, fill, background = shift_tasks._polygon, shift_tasks._fill, shift_tasks._background
    monkeypatch.setattr(
        shift_tasks, '_polygon',
        lambda rng, kind, *a: drawn['polygons'].append(kind) or polygon(rng, kind, *a))
    monkeypatch.setattr(
        shift_tasks, '_fill',
        lambda img, pts, colour: drawn['fills'].append(colour) or fill(img, pts, colour))
    monkeypatch.setattr(
        shift_tasks, '_background',
        lambda rng, size, colour, **k: drawn['backgrounds'].append(colour) or background(
            rng, size, colour, **k))
    img, cat = make(np.random.default_rng(seed), 64)
    return img, cat, drawn


def test_recolour_is_the_shape_at_one_luminance(monkeypatch):
    """The class is the large object's shape; object, distractor and background share one
    luminance and differ in hue by a colour distance of 35-60."""
    for seed in range(30):
        img, cat, drawn = _recorded_recolour(seed, monkeypatch)
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        assert drawn['polygons'][0] == shift_tasks.RECOLOUR_CLASSES[cat]
        bg = drawn['backgrounds'][0]
        for colour in drawn['fills']:
            assert shift_tasks.luminance(colour) == pytest.approx(shift_tasks.luminance(bg))
            assert 35 - 1e-9 <= np.linalg.norm(np.asarray(colour) - bg) <= 60 + 1e-9
    # and the classes are drawn evenly
    counts = np.bincount(
        [shift_tasks.make_recolour(np.random.default_rng(s), 32)[1] for s in range(300)],
        minlength=3)
    assert counts.min() > 70


def test_recolour_opponent_is_the_shape_that_differs_in_the_signal_hue(monkeypatch):
    """The class is the shape filled off the background along the signal hue axis; a distractor
    of another shape differs along the nuisance axis only, as do the background's ramp and
    clutter; every colour has the background's luminance."""
    signal, nuisance = shift_tasks.OPPONENT_SIGNAL, shift_tasks.OPPONENT_NUISANCE
    assert abs(signal @ nuisance) < 1e-9
    assert max(abs(shift_tasks.luminance(signal)), abs(shift_tasks.luminance(nuisance))) < 1e-9
    for seed in range(30):
        img, cat, drawn = _recorded_recolour(
            seed, monkeypatch, make=shift_tasks.make_recolour_opponent)
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        assert len(drawn['polygons']) == len(drawn['fills']) == 2
        (obj, dis), (obj_fill, dis_fill) = drawn['polygons'], drawn['fills']
        assert obj == shift_tasks.RECOLOUR_CLASSES[cat] and dis != obj
        bg = drawn['backgrounds'][0]
        off_obj, off_dis = np.asarray(obj_fill) - bg, np.asarray(dis_fill) - bg
        assert 35 - 1e-6 <= abs(off_obj @ signal) <= 60 + 1e-6
        assert np.allclose(off_obj, (off_obj @ signal) * signal)  # the signal axis only
        assert 35 - 1e-6 <= abs(off_dis @ nuisance) <= 60 + 1e-6
        assert np.allclose(off_dis, (off_dis @ nuisance) * nuisance)  # the nuisance axis only
        assert shift_tasks.luminance(bg) == pytest.approx(shift_tasks.luminance(obj_fill))
        assert abs((np.asarray(bg) - shift_tasks.luminance(bg)) @ signal) < 1e-9
        # read back from the image alone: only the object's pixels are far off along the signal
        # axis (35-60; the pixel noise gives about 4.3), all to the object's side
        hue = (img.astype(np.float64) - shift_tasks.luminance(img)[..., None]) @ signal
        off = hue[np.abs(hue - np.median(hue)) > 25]
        assert off.size > 50 and np.all(np.sign(off - np.median(hue)) == np.sign(off_obj @ signal))
    counts = np.bincount(
        [shift_tasks.make_recolour_opponent(np.random.default_rng(s), 32)[1] for s in range(300)],
        minlength=3)
    assert counts.min() > 70


def _grating_class(img):
    """(period kind, angle) of the strongest periodic component of an image's luminance, in
    the grating task's period bands (3-8 px)."""
    y = shift_tasks.luminance(img.astype(np.float64))
    spec = np.abs(np.fft.fftshift(np.fft.fft2(y - y.mean())))
    n = y.shape[0]
    fy, fx = np.mgrid[0:n, 0:n] - n // 2
    radius = np.hypot(fx, fy) / n  # cycles per pixel
    spec[(radius < 1 / 8) | (radius > 1 / 2.8)] = 0
    iy, ix = np.unravel_index(np.argmax(spec), spec.shape)
    period = n / math.hypot(fx[iy, ix], fy[iy, ix])
    angle = math.degrees(math.atan2(fy[iy, ix], fx[iy, ix])) % 180
    return ('fine' if period < 4.5 else 'coarse'), (45 if angle < 90 else 135)


def test_a_gratings_class_is_its_period_and_orientation():
    """Read back from the images alone (a Fourier peak), each class is its period band and
    orientation; the colours are the fixed pair whatever the class."""
    rng = np.random.default_rng(0)
    for cat, name in enumerate(shift_tasks.GRATING_CLASSES):
        period, angle = name.split()
        for _ in range(5):
            g = shift_tasks.grating(rng, 64, cat)
            assert _grating_class(g) == (period, int(angle))
            lo, hi = (np.asarray(c) for c in shift_tasks.GRATING_COLOURS)
            assert np.all(g >= np.minimum(lo, hi) - 8.01) and np.all(g <= np.maximum(lo, hi) + 8.01)
    right = 0
    for seed in range(40):  # whole images: background, clutter, noise, a shape of any kind
        img, cat = shift_tasks.make_gratings(np.random.default_rng(seed), 64)
        period, angle = shift_tasks.GRATING_CLASSES[cat].split()
        right += _grating_class(img) == (period, int(angle))
    assert right >= 38


def _fine_period_band(img, pad=256):
    """The band of :data:`GRATING_FINE_PERIODS` (± 0.1 px) holding the period of an image's
    strongest periodic luminance component (2.5-7 px; a zero-padded FFT for sub-bin
    precision), or None."""
    y = shift_tasks.luminance(img.astype(np.float64))
    spec = np.abs(np.fft.fftshift(np.fft.fft2(y - y.mean(), s=(pad, pad))))
    fy, fx = np.mgrid[0:pad, 0:pad] - pad // 2
    radius = np.hypot(fx, fy) / pad
    spec[(radius < 1 / 7) | (radius > 1 / 2.5)] = 0
    iy, ix = np.unravel_index(np.argmax(spec), spec.shape)
    period = pad / math.hypot(fx[iy, ix], fy[iy, ix])
    bands = [
        i for i, (lo, hi) in enumerate(shift_tasks.GRATING_FINE_PERIODS)
        if lo - 0.1 <= period <= hi + 0.1
    ]
    return bands[0] if bands else None


def test_a_fine_gratings_class_is_its_period_band():
    """Read back from the images alone, each gratings_fine class is its period band (the
    bands ~1.2x apart), whatever the orientation (45° or 135°, both drawn in every class)."""
    rng = np.random.default_rng(0)
    for cat in range(len(shift_tasks.GRATING_FINE_CLASSES)):
        angles = set()
        for _ in range(12):
            g = shift_tasks.grating_fine(rng, 64, cat)
            assert _fine_period_band(g) == cat
            angles.add(_grating_class(g)[1])
        assert angles == {45, 135}  # orientation is a nuisance, not the class
    right = sum(
        _fine_period_band(img) == cat
        for img, cat in (shift_tasks.make_gratings_fine(np.random.default_rng(s), 64)
                         for s in range(40)))
    assert right >= 38
    counts = np.bincount(
        [shift_tasks.make_gratings_fine(np.random.default_rng(s), 32)[1] for s in range(300)],
        minlength=4)
    assert counts.min() > 50


@pytest.mark.slow  # makes a teacher task (~20 s)
def test_teacher_labels_follow_the_rule_on_the_written_images(start_ckpt, teacher_task):
    """Recomputed from the decoded JPEGs: the teacher's features f_T, the two directions from the
    train split, every split's label 2·[u1·f_T > m1] + [u2·f_T > m2]."""
    import cv2
    root = teacher_task
    teacher = teacher_labels.make_teacher(start_ckpt, 'multiplicative', 2, 0.5, 0)
    start = teacher_labels.start_backbone(start_ckpt)
    feats = {}
    for split in TEACHER_SPLITS:
        paths = [ln.split()[0] for ln in (root / f'{split}.txt').read_text().splitlines()]
        imgs = np.stack([cv2.imread(str(root / p)) for p in paths])
        feats[split] = teacher_labels.features(teacher, imgs), teacher_labels.features(start, imgs)
    dirs, medians = teacher_labels.label_directions(*feats['train'])
    for split in TEACHER_SPLITS:
        proj = feats[split][0] @ dirs.T
        expected = 2 * (proj[:, 0] > medians[0]) + (proj[:, 1] > medians[1])
        assert np.array_equal(_labels(root, split), expected)
    assert np.bincount(_labels(root, 'train'), minlength=4).min() > 0.1 * TEACHER_SPLITS['train']
    import json
    stamp = json.loads((root / 'DONE.json').read_text())
    assert stamp['eps'] == 0.5 and stamp['rank'] == 2 and len(stamp['start_sha256']) == 64


def test_label_directions_find_what_the_start_features_cannot_explain():
    """u1 is the direction of the teacher's features that no affine map of the start features
    gives (here a nonlinear one), not merely the one of largest variance."""
    rng = np.random.default_rng(0)
    f0 = rng.normal(size=(2000, 6))
    hidden = np.abs(f0[:, 0]) + 0.1 * rng.normal(size=2000)  # not linear in f0
    f_t = np.c_[3 * f0[:, :4], hidden, f0[:, 4:] @ rng.normal(size=(2, 3))]
    dirs, medians = teacher_labels.label_directions(f_t, f0)
    assert abs(dirs[0, 4]) > 0.95
    labels = teacher_labels.quadrant_labels(f_t, dirs, medians)
    assert set(labels) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match=r'more train images than .* \(7\), got 7: enlarge'):
        teacher_labels.label_directions(f_t[:7], f0[:7])


def _factor_rank(x, rtol=1e-8):
    s = torch.linalg.svdvals(x)
    return int((s > rtol * s[0]).sum())


@pytest.mark.parametrize('kind', ['multiplicative', 'additive'])
def test_a_teacher_lies_in_its_adapters_family(start_ckpt, kind):
    """In the factor layout (W viewed as B @ A: inner dimension r, r·k for a k x k conv), the
    multiplicative teacher's W_T / W − 1 has the adapters' rank while W_T − W has more, the
    additive one's W_T − W has it. Each layer moves by ‖W_T − W‖ / ‖W‖ = eps."""
    from mmliera.models.peft import adapter_layers, inject_adapters
    start = teacher_labels.start_backbone(start_ckpt)
    teacher = teacher_labels.make_teacher(start_ckpt, kind, 2, 0.5, 0)
    shapes = teacher_labels.start_backbone(start_ckpt)
    inject_adapters(shapes, rank=2, mode='lora', check_zeros=False)
    layers = adapter_layers(shapes)
    assert len(layers) > 20
    t, s = teacher.state_dict(), start.state_dict()
    wider = narrow = 0
    for name, layer in layers.items():
        w, w_t = s[f'{name}.weight'], t[f'{name}.weight']
        rows, cols = layer.lora_B.shape[0], layer.lora_A.shape[1]
        rank = min(layer.lora_A.shape[0], rows, cols)
        diff = (w_t - w).reshape(rows, cols)
        assert ((w_t - w).norm() / w.norm()).item() == pytest.approx(0.5, rel=1e-6)
        if kind == 'additive':
            assert _factor_rank(diff) == rank, name
        else:
            assert _factor_rank((w_t / w - 1).reshape(rows, cols)) == rank, name
            if rank < min(rows, cols):
                narrow += 1
                wider += _factor_rank(diff) > rank
    if kind == 'multiplicative':
        assert narrow > 20 and wider == narrow  # not in LoRA's family at that rank
    assert all(layer.merged for layer in adapter_layers(teacher).values())  # W_T is in weight


def test_bad_settings_are_one_clear_error(tmp_path, start_ckpt):
    ensure = capacity_cls.ensure_capacity_task
    with pytest.raises(
            ValueError,
            match="task must be one of teacher_multiplicative, teacher_additive, recolour, "
            "recolour_opponent, gratings, gratings_fine, got 'stripes'"):
        ensure(str(tmp_path / 'a'), 'stripes')
    with pytest.raises(ValueError, match="needs start=<the start backbone checkpoint>, got None"):
        ensure(str(tmp_path / 'a'), 'teacher_additive')
    with pytest.raises(ValueError, match=r"unknown teacher settings \['rnak'\]; use rank, eps"):
        ensure(str(tmp_path / 'a'), 'teacher_additive', start=start_ckpt, rnak=2)
    with pytest.raises(
            ValueError, match=r"task 'gratings' takes no teacher settings, got \['eps'\]"):
        ensure(str(tmp_path / 'a'), 'gratings', eps=0.5)
    with pytest.raises(ValueError, match='enlarge splits.train'):
        ensure(
            str(tmp_path / 'b'),
            'teacher_additive',
            start=start_ckpt,
            image_size=32,
            splits=dict(train=20, val=4))
    assert not (tmp_path / 'b').exists()  # nothing half-written
    with pytest.raises(ValueError, match='splits must include train'):
        ensure(str(tmp_path / 'a'), 'gratings', splits=dict(val=4))
    with pytest.raises(UserError, match='kind must be one of multiplicative, additive'):
        teacher_labels.make_teacher(start_ckpt, 'hadamard', 2, 0.5, 0)


def _options(task):
    """task_cfg_options(task) as ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    return {
        k: DictAction._parse_iterable(v)
        for k, v in (o.split('=', 1) for o in capacity_cls.task_cfg_options(task))
    }


def _cfg(arm, task):
    cfg = Config.fromfile(os.path.join(CONFIGS, arm))
    cfg.merge_from_dict(_options(task))
    return cfg


@pytest.mark.parametrize('task', list(capacity_cls.CLASSES))
def test_one_set_of_options_points_every_config_at_a_task(task):
    cfg = _cfg('lora_r2.py', task)
    n = len(capacity_cls.CLASSES[task])
    assert cfg.model.head.num_classes == cfg.model.data_preprocessor.num_classes == n
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader'].dataset
        assert ds.type == 'CapacityClsDataset' and ds.task == task
        assert ds.ann_file == f'{split}.txt'
        assert ds.teacher.start.endswith('transfer_cls_study/start_backbone.pth')
    # no flip: it would turn a grating's 45° into 135°, and a teacher's labels are not mirrored
    assert [t['type']
            for t in cfg.train_dataloader.dataset.pipeline] == ['LoadImageFromFile', 'PackInputs']
    with pytest.raises(ValueError, match="task must be one of .*, got 'x'"):
        capacity_cls.task_cfg_options('x')


def test_the_arms_train_what_they_say():
    from projects.liera_study.liera_study.compare.configs import count_trainable

    def trainable(arm):
        return count_trainable(os.path.join(CONFIGS, arm), _options('gratings'))

    head = 320 * 4 + 4
    assert trainable('frozen.py')[:2] == (head, 0)
    norms, full = trainable('norms.py')[1], trainable('full.py')[1]
    assert 0 < norms < full / 20
    ranks = {r: trainable(f'lora_r{r}.py')[1] for r in (2, 8, 32)}
    assert ranks[8] == 4 * ranks[2] and ranks[32] == 4 * ranks[8]
    assert all(trainable(f'liera_r{r}.py')[1] == ranks[r] for r in (2, 8))
    assert Config.fromfile(os.path.join(CONFIGS, 'liera_r8.py')).model.backbone.adapter.mode == \
        'taylor'


def test_the_dataset_builds_in_mmpretrains_scope_and_a_bad_task_is_one_error(tmp_path):
    from mmengine.registry import DefaultScope, init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    try:
        ds = DATASETS.build(
            dict(
                type='CapacityClsDataset',
                data_root=str(tmp_path / 'd'),
                task='gratings',
                synthetic=HAND_MADE,
                teacher=dict(start='not read by a hand-made task', eps=1),
                ann_file='val.txt',
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='PackInputs')]))
    finally:
        DefaultScope._instance_dict.clear()
    assert len(ds) == 8 and ds.metainfo['classes'] == shift_tasks.GRATING_CLASSES
    assert (tmp_path / 'd' / 'gratings' / 'val.txt').is_file()
    plain = capacity_cls.CapacityClsDataset.plain_dataset(
        dict(
            type='CapacityClsDataset',
            data_root='data/capacity',
            task='recolour',
            synthetic={},
            teacher={},
            ann_file='test.txt'))
    assert plain == dict(
        type='CustomDataset',
        data_root='data/capacity/recolour',
        ann_file='test.txt',
        metainfo=dict(classes=['square', 'disc', 'triangle']))
    cfg = write_cfg(
        tmp_path / 'bad.py', os.path.join(CONFIGS, 'frozen.py'), f"""
train_dataloader = dict(dataset=dict(data_root='{tmp_path}/e', task='grating'))
""")
    code, out, err = tool_in_process('train', cfg, '--work-dir', tmp_path / 'w')
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith('error:'), err
    assert "task must be one of" in lines[0] and "got 'grating'" in lines[0]
    assert 'Traceback' not in out + err
