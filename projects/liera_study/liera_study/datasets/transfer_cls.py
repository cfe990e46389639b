"""The embedded classification transfer task: name the shape of the one large object.

Two tasks, drawn by the same generator (:func:`_make_image`), one large object per 64 px image
on a random colour gradient with 0-2 clutter lines and pixel noise:

* ``'source'`` (pre-training, ``projects/liera_study/configs/transfer_cls/source_pretrain.py``):
the demo's three
  shapes (square, disc, triangle) **filled flat** in a random colour;
* ``'target'`` (the transfer task): five shapes (:data:`CLASSES`: the three and two new ones,
  cross and star) **filled with a texture** (:data:`TEXTURES`: striped, checkered, dotted as in
  :mod:`.transfer_coco`, crosshatched, wavy) in two random contrasting colours, with a random
  angle and period, and half of the images with a small flat distractor shape beside it.

So the backbone trained on the source sees new classes and a new appearance: texture edges
inside the object where flat fills had none. ``ensure_transfer_cls(root)`` writes, once and
atomically, in mmpretrain's ``CustomDataset`` layout with annotation lists::

    {split}/000000.jpg ...      images (BGR JPEG, ``image_size`` square)
    {split}.txt                 one line per image: ``{split}/000000.jpg <class index>``

for the splits ``train`` (800 images), ``val`` (200) and ``test`` (600) by default: the study
fits on train, makes every choice on val and reports test. The same seed gives byte-identical
files.
"""
import math
import os
import os.path as osp

import cv2
import numpy as np
from mmpretrain.datasets import CustomDataset

from mmliera.datasets.synthetic_coco import CLASSES as SHAPE_CLASSES
from mmliera.datasets.synthetic_coco import generate_once
from mmliera.registry import DATASETS
from .errors import TaskSettingError
from .transfer_coco import SHAPES, _fill, _polygon, _texture, paint_two_colours

TEXTURES = ('striped', 'checkered', 'dotted', 'crosshatched', 'wavy')
CLASSES = SHAPES  # the target task's
# task -> its classes: 'source' (pre-training: the demo's three shapes, flat random colours),
# 'target' (the transfer task: five shapes filled with textures)
TASKS = dict(source=SHAPE_CLASSES, target=SHAPES)
DEFAULT_SPLITS = dict(train=800, val=200, test=600)
FORMAT_VERSION = 1


def texture(rng, kind, size):
    """A (size, size, 3) float image of texture ``kind`` (one of :data:`TEXTURES`)."""
    if kind in TEXTURES[:3]:
        return _texture(rng, kind, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    a = rng.uniform(0, math.pi)
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    period = rng.uniform(6, 10)
    if kind == 'crosshatched':  # thin lines in two crossing directions
        width = rng.uniform(0.25, 0.4)
        on = ((u / period) % 1 < width) | ((v / period) % 1 < width)
    else:  # wavy stripes
        amp, wave = rng.uniform(1.5, 3.0), rng.uniform(10, 16)
        on = np.sin(2 * math.pi * (u + amp * np.sin(2 * math.pi * v / wave)) / period) > 0
    return paint_two_colours(rng, on)


def _make_image(rng, size, task='target'):
    """One image (BGR uint8, ``size`` square) and its class index."""
    classes = TASKS[task]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 200, 3)
    img = np.stack([base[i] + rng.uniform(-40, 40) * (xx if i % 2 else yy) for i in range(3)], -1)
    for _ in range(int(rng.integers(0, 3))):  # clutter lines
        p0, p1 = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1),
                 rng.uniform(0, 255, 3).tolist(), 1)
    cat = int(rng.integers(len(classes)))
    r = rng.uniform(0.24, 0.36) * size
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    fill = texture(rng, TEXTURES[int(rng.integers(len(TEXTURES)))], size) \
        if task == 'target' else rng.uniform(20, 235, 3)
    _fill(img, _polygon(rng, classes[cat], cx, cy, r), fill)
    if rng.uniform() < 0.5:  # a small flat distractor, away from the object where it fits
        rd = rng.uniform(0.08, 0.14) * size
        for _attempt in range(10):
            dx, dy = rng.uniform(rd + 1, size - rd - 1, 2)
            if math.hypot(dx - cx, dy - cy) > r + rd:
                _fill(img, _polygon(rng, SHAPES[int(rng.integers(len(SHAPES)))], dx, dy, rd),
                      rng.uniform(20, 235, 3))
                break
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cat


def _write_split(root, split, num_images, size, seed, task):
    rng = np.random.default_rng([seed, sum(map(ord, split)), sum(map(ord, task))])
    os.makedirs(osp.join(root, split))
    lines = []
    for i in range(num_images):
        img, cat = _make_image(rng, size, task)
        name = f'{split}/{i:06d}.jpg'
        cv2.imwrite(osp.join(root, name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines.append(f'{name} {cat}\n')
    with open(osp.join(root, f'{split}.txt'), 'w') as f:
        f.writelines(lines)


def ensure_transfer_cls(root, splits=None, image_size=64, seed=0, task='target'):
    """Generate the classification task under ``root`` unless it is already there; returns
    ``root`` (an error if ``root`` holds one made with other settings)."""
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    if not 32 <= image_size <= 1024:
        raise TaskSettingError(f'image_size must be in [32, 1024], got {image_size}')
    if task not in TASKS:
        raise TaskSettingError(f'task must be one of {", ".join(TASKS)}, got {task!r}')
    if not splits or not all(isinstance(n, int) and n > 0 for n in splits.values()):
        raise TaskSettingError(f'split sizes must be positive ints, got {splits}')
    stamp = dict(
        version=FORMAT_VERSION,
        task=f'transfer_cls/{task}',
        splits=splits,
        image_size=image_size,
        seed=seed)
    return generate_once(
        root, stamp,
        lambda tmp: [_write_split(tmp, s, n, image_size, seed, task) for s, n in splits.items()])


@DATASETS.register_module()
class TransferClsDataset(CustomDataset):
    """mmpretrain ``CustomDataset`` over the texture task, generated under ``data_root`` if
    missing; ``ann_file`` is a split's list (``'train.txt'``, ``'val.txt'``, ``'test.txt'``).

    Args:
        synthetic (dict): arguments of :func:`ensure_transfer_cls` (``splits``,
            ``image_size``, ``seed``).
    """

    MAKES_ITS_DATA = True  # (the data check skips its files)
    METAINFO = dict(classes=CLASSES)

    def __init__(self, *args, data_root='', synthetic=None, metainfo=None, **kwargs):
        if not data_root:
            raise TaskSettingError('TransferClsDataset needs data_root (where to write the data)')
        synthetic = dict(synthetic or {})
        ensure_transfer_cls(data_root, **synthetic)
        metainfo = dict(classes=TASKS[synthetic.get('task', 'target')], **(metainfo or {}))
        super().__init__(*args, data_root=data_root, metainfo=metainfo, **kwargs)

    @classmethod
    def plain_dataset(cls, cfg: dict) -> dict:
        """The plain dataset config that reads the data this one wrote (merge-and-export):
        mmpretrain's ``CustomDataset`` with the task's classes."""
        cfg = dict(cfg, type='CustomDataset')
        task = (cfg.pop('synthetic', None) or {}).get('task', 'target')
        cfg.setdefault('metainfo', dict(classes=list(TASKS[task])))
        return cfg
