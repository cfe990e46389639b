"""A deterministic, COCO-format instance-segmentation dataset of coloured shapes.

``ensure_synthetic_coco(root)`` writes, once, under ``root``::

    {split}/000000.jpg ...                      images (RGB, ``image_size`` square)
    annotations/instances_{split}.json          COCO json: polygons, boxes, areas, 3 classes

for the splits ``pretrain`` (to pre-train a backbone), ``train`` and ``val``. The same seed gives
byte-identical files. Writing goes to a temporary folder renamed into place, so concurrent
processes (DDP ranks) never see a half-written dataset.

``SyntheticCocoDataset`` is mmdet's ``CocoDataset`` that makes sure the data exists first.
The image generator is a :class:`SyntheticTask` (classes + ``make_image``); ``SHAPES`` is the
demo's, ``transfer_coco.TRANSFER`` a shifted target domain written by the same machinery.
"""
import json
import math
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np
from mmdet.datasets import CocoDataset

from ..registry import DATASETS
from ..utils.errors import UserError

CLASSES = ('square', 'disc', 'triangle')
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75)]
DEFAULT_SPLITS = dict(pretrain=96, train=96, val=32)
FORMAT_VERSION = 1


def _shape_polygon(rng, kind, cx, cy, size):
    """Polygon (N, 2) float of one shape centred at (cx, cy) with radius ``size``."""
    if kind == 'square':
        w, h = size * rng.uniform(0.7, 1.0), size * rng.uniform(0.7, 1.0)
        pts = [(-w, -h), (w, -h), (w, h), (-w, h)]
        a = rng.uniform(-0.4, 0.4)
    elif kind == 'disc':
        a = 0.0
        rx, ry = size, size * rng.uniform(0.75, 1.0)
        pts = [(rx * math.cos(t), ry * math.sin(t))
               for t in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    else:  # triangle
        a = rng.uniform(0, 2 * math.pi)
        pts = [(size * math.cos(t), size * math.sin(t))
               for t in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
    c, s = math.cos(a), math.sin(a)
    return np.array([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], np.float32)


def _make_image(rng, size, max_objects):
    """One image and its objects [(category index, polygon)]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 120, 3)
    img = np.stack([base[i] + 60 * (xx if i % 2 else yy) for i in range(3)], -1)
    img += rng.normal(0, 12, img.shape)
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            r = rng.uniform(size * 0.07, size * 0.18)
            cx, cy = rng.uniform(r + 2, size - r - 2, 2)
            box = (cx - r, cy - r, cx + r, cy + r)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in boxes):
                break
        else:
            continue
        cat = int(rng.integers(len(CLASSES)))
        poly = _shape_polygon(rng, CLASSES[cat], cx, cy, r)
        colour = np.clip(np.array(PALETTE[cat]) + rng.normal(0, 20, 3), 0, 255)
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], colour[::-1].tolist())
        objects.append((cat, poly))
        boxes.append(box)
    return np.clip(img, 0, 255).astype(np.uint8), objects


class SyntheticTask(NamedTuple):
    """A generated COCO task: ``make_image(rng, size, max_objects) -> (uint8 HxWx3 BGR image,
    [(category index, polygon (N, 2))])`` over ``classes``."""
    name: str
    classes: Sequence[str]
    palette: Sequence[tuple]
    make_image: Callable


SHAPES = SyntheticTask('shapes', CLASSES, PALETTE, _make_image)


def _write_split(root, split, num_images, size, max_objects, seed, task=SHAPES):
    rng = np.random.default_rng([seed, sum(map(ord, split))])
    os.makedirs(osp.join(root, split))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        img, objects = task.make_image(rng, size, max_objects)
        name = f'{i:06d}.jpg'
        cv2.imwrite(osp.join(root, split, name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        for cat, poly in objects:
            poly = np.clip(poly, 0, size - 1)
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            area = float(cv2.contourArea(poly))
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=cat + 1,
                    segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]],
                    bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                    area=round(area, 2),
                    iscrowd=0))
    coco = dict(
        info=dict(
            description=f'mmliera synthetic {task.name} ({split})',
            version=FORMAT_VERSION,
            seed=seed),
        images=images,
        annotations=anns,
        categories=[
            dict(id=i + 1, name=c, supercategory='shape') for i, c in enumerate(task.classes)
        ])
    with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)


def ensure_synthetic_coco(root, splits=None, image_size=256, max_objects=4, seed=0, task=SHAPES):
    """Generate ``task``'s dataset under ``root`` unless it is already there; returns ``root``."""
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    if not 32 <= image_size <= 1024:
        raise ValueError(f'image_size must be in [32, 1024], got {image_size}')
    if not all(isinstance(n, int) and n > 0 for n in splits.values()):
        raise ValueError(f'split sizes must be positive ints, got {splits}')
    stamp = dict(
        version=FORMAT_VERSION,
        splits=splits,
        image_size=image_size,
        max_objects=max_objects,
        seed=seed)
    if task.name != SHAPES.name:  # (the demo's stamp stays as it was)
        stamp['task'] = task.name
    return generate_once(
        root, stamp, lambda tmp: [
            _write_split(tmp, split, n, image_size, max_objects, seed, task)
            for split, n in splits.items()
        ])


class SyntheticDataError(UserError, ValueError):
    """A data folder that holds a generated dataset made with other settings."""


def generate_once(root, stamp, write):
    """Make ``root`` with ``write(folder)`` unless it holds a dataset stamped ``stamp``.

    ``write`` fills a temporary folder beside ``root`` that is renamed into place with
    ``DONE.json`` (= ``stamp``) in it, so concurrent processes (DDP ranks) never see a
    half-written dataset; a folder stamped otherwise is an error naming both stamps."""
    marker = osp.join(root, 'DONE.json')
    if osp.exists(marker):
        with open(marker) as f:
            found = json.load(f)
        if found != stamp:
            raise SyntheticDataError(
                f'{root} holds a synthetic dataset made with {found}, not {stamp}; '
                'delete the folder or point data_root elsewhere')
        return root
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.synthetic-', dir=parent)
    try:
        write(tmp)
        with open(osp.join(tmp, 'DONE.json'), 'w') as f:
            json.dump(stamp, f)
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first (same content) or root exists
            if not osp.exists(marker):
                raise
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
    return root


@DATASETS.register_module()
class SyntheticCocoDataset(CocoDataset):
    """mmdet ``CocoDataset`` over the synthetic shapes, generated under ``data_root`` if missing.

    Args:
        synthetic (dict): arguments of :func:`ensure_synthetic_coco` (``splits``,
            ``image_size``, ``max_objects``, ``seed``).
    """

    MAKES_ITS_DATA = True  # (the data check skips its files)
    TASK = SHAPES
    DEFAULTS = dict()  # the task's own defaults for ``synthetic``
    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, *args, data_root='', synthetic=None, **kwargs):
        if not data_root:
            raise ValueError(f'{type(self).__name__} needs data_root (where to write the data)')
        ensure_synthetic_coco(data_root, task=self.TASK, **{**self.DEFAULTS, **(synthetic or {})})
        super().__init__(*args, data_root=data_root, **kwargs)

    @classmethod
    def plain_dataset(cls, cfg: dict) -> dict:
        """The plain dataset config that reads the data this one wrote (merge-and-export):
        mmdet's ``CocoDataset`` with this task's classes and palette."""
        cfg = dict(cfg, type='CocoDataset')
        cfg.pop('synthetic', None)
        cfg.setdefault('metainfo',
                       dict(classes=cls.METAINFO['classes'], palette=cls.METAINFO['palette']))
        return cfg
