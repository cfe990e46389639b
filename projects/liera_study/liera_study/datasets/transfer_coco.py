"""The embedded transfer task: a target domain the demo's pre-trained backbone must adapt to.

The demo backbone is pre-trained on :data:`~.synthetic_coco.SHAPES`: squares, discs and
triangles, each filled flat in its class's colour, on smooth backgrounds, so shape and colour
tell the class. In the target (:func:`_make_target_image`):

* **the class is the texture** (:data:`CLASSES`: striped, checkered, dotted), drawn in two
  random contrasting colours with a random angle and period; the shape is any of five
  (the three pre-training shapes, crosses, stars) and says nothing about the class;
* **distractors**: 1-2 unannotated shapes (the same five) filled flat in a random colour, which
  a detector must learn to ignore (in pre-training every flat shape was an object);
* **clutter and scale**: random colour gradients as backgrounds, 0-3 random lines, pixel noise,
  objects of radius 8-18 % of the image (1 to ``max_objects`` per image).

Annotated objects and distractors never overlap, so every polygon is exact.
``ensure_transfer_coco(root)`` writes the splits ``train`` (128 images), ``val`` (64) and
``test`` (256) with the writer of :mod:`.synthetic_coco` (deterministic per split name, atomic):
the study fits on train, makes every choice on val and reports test.
"""
import math

import cv2
import numpy as np

from mmliera.datasets.synthetic_coco import CLASSES as SHAPE_CLASSES
from mmliera.datasets.synthetic_coco import (SyntheticCocoDataset, SyntheticTask, _shape_polygon,
                                             ensure_synthetic_coco)
from mmliera.registry import DATASETS

CLASSES = ('striped', 'checkered', 'dotted')
PALETTE = [(255, 127, 14), (148, 103, 189), (23, 190, 207)]
DEFAULT_SPLITS = dict(train=128, val=64, test=256)
SHAPES = SHAPE_CLASSES + ('cross', 'star')


def _polygon(rng, kind, cx, cy, size):
    """Polygon (N, 2) of a pre-training shape or a cross / star, centred at (cx, cy)."""
    if kind in SHAPE_CLASSES:
        return _shape_polygon(rng, kind, cx, cy, size)
    a = rng.uniform(0, 2 * math.pi)
    if kind == 'cross':
        t = size * rng.uniform(0.35, 0.5)  # half the arm width
        pts = [(t, -size), (t, -t), (size, -t), (size, t), (t, t), (t, size), (-t, size), (-t, t),
               (-size, t), (-size, -t), (-t, -t), (-t, -size)]
    else:  # star
        inner = size * rng.uniform(0.45, 0.6)
        pts = [((size if k % 2 == 0 else inner) * math.cos(math.pi * k / 5),
                (size if k % 2 == 0 else inner) * math.sin(math.pi * k / 5)) for k in range(10)]
    c, s = math.cos(a), math.sin(a)
    return np.array([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], np.float32)


def _texture(rng, kind, size):
    """A (size, size, 3) float image of texture ``kind`` in two contrasting random colours."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    a = rng.uniform(0, math.pi)
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    period = rng.uniform(6, 10)
    if kind == 'striped':
        on = np.sin(2 * math.pi * u / period) > 0
    elif kind == 'checkered':
        on = (np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2 == 0
    else:  # dotted
        du = (u / period) % 1 - 0.5
        dv = (v / period) % 1 - 0.5
        on = du**2 + dv**2 < rng.uniform(0.05, 0.09)
    return paint_two_colours(rng, on)


def paint_two_colours(rng, on):
    """(H, W, 3) float image: a random colour where ``on`` is True, a contrasting one elsewhere."""
    c0 = rng.uniform(20, 235, 3)
    c1 = np.clip(c0 + rng.choice([-1, 1], 3) * rng.uniform(70, 140, 3), 0, 255)
    return np.where(on[..., None], c1, c0)


def _place(rng, size, r_range, boxes):
    """A free spot (cx, cy, r) whose box overlaps none of ``boxes`` (appended), or None."""
    for _attempt in range(30):
        r = rng.uniform(size * r_range[0], size * r_range[1])
        cx, cy = rng.uniform(r + 2, size - r - 2, 2)
        box = (cx - r, cy - r, cx + r, cy + r)
        if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in boxes):
            boxes.append(box)
            return cx, cy, r
    return None


def _fill(img, poly, paint):
    """Paint ``poly`` on ``img`` with ``paint`` (an image of img's shape, or a colour)."""
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    img[mask > 0] = paint[mask > 0] if np.ndim(paint) == 3 else paint


def _make_target_image(rng, size, max_objects):
    """One target image (BGR uint8) and its objects [(category index, polygon)]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 200, 3)
    img = np.stack([base[i] + rng.uniform(-40, 40) * (xx if i % 2 else yy) for i in range(3)], -1)
    for _ in range(int(rng.integers(0, 4))):  # clutter lines
        p0, p1 = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1),
                 rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 3)))
    boxes, objects = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        spot = _place(rng, size, (0.08, 0.18), boxes)
        if spot is not None:
            cat = int(rng.integers(len(CLASSES)))
            poly = _polygon(rng, SHAPES[int(rng.integers(len(SHAPES)))], *spot)
            _fill(img, poly, _texture(rng, CLASSES[cat], size))
            objects.append((cat, poly))
    for _ in range(int(rng.integers(1, 3))):  # unannotated distractors: flat, as in pre-training
        spot = _place(rng, size, (0.08, 0.18), boxes)
        if spot is not None:
            poly = _polygon(rng, SHAPES[int(rng.integers(len(SHAPES)))], *spot)
            _fill(img, poly, rng.uniform(20, 235, 3))
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), objects


TRANSFER = SyntheticTask('transfer', CLASSES, PALETTE, _make_target_image)


def ensure_transfer_coco(root, splits=None, image_size=256, max_objects=4, seed=0):
    """Generate the transfer task under ``root`` unless it is already there; returns ``root``."""
    return ensure_synthetic_coco(
        root,
        dict(DEFAULT_SPLITS if splits is None else splits),
        image_size,
        max_objects,
        seed,
        task=TRANSFER)


@DATASETS.register_module()
class TransferCocoDataset(SyntheticCocoDataset):
    """mmdet ``CocoDataset`` over the transfer task, generated under ``data_root`` if missing.

    Args:
        synthetic (dict): arguments of :func:`ensure_transfer_coco` (``splits``,
            ``image_size``, ``max_objects``, ``seed``).
    """

    TASK = TRANSFER
    DEFAULTS = dict(splits=DEFAULT_SPLITS, max_objects=4)
    METAINFO = dict(classes=CLASSES, palette=PALETTE)
