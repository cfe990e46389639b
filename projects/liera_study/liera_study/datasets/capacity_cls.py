"""The capacity study's classification tasks (``projects/liera_study/docs/capacity_study.md``).

Five tasks, each written once under ``{data_root}/{task}/`` in mmpretrain's ``CustomDataset``
layout (``{split}/000000.jpg``, ``{split}.txt``: ``{split}/000000.jpg <class index>``):

* ``'teacher_multiplicative'``, ``'teacher_additive'`` (the sensitivity check): the classification
  study's target images (:func:`.transfer_cls._make_image`), labelled by a teacher, the start
  backbone perturbed as W ⊙ (1 + ΔW) or W + ΔW (rank ``rank``, relative change ``eps``;
  :mod:`.teacher_labels`);
* ``'recolour'`` and its redesign ``'recolour_opponent'`` (re-weighting shifts) and
  ``'gratings'`` (a new-filter shift), hand-made (:mod:`.shift_tasks`).

Splits train / val / test (1600 / 400 / 1000 by default) come from disjoint random streams of one
``seed``; the same settings give byte-identical files.
"""
import os
import os.path as osp

import cv2
import numpy as np
from mmpretrain.datasets import CustomDataset

from mmliera.checkpoint.digest import weights_sha256
from mmliera.datasets.synthetic_coco import generate_once
from mmliera.registry import DATASETS
from . import shift_tasks, teacher_labels
from .errors import TaskSettingError
from .transfer_cls import _make_image as transfer_image

TEACHER_TASKS = dict(teacher_multiplicative='multiplicative', teacher_additive='additive')
CLASSES = dict(
    teacher_multiplicative=teacher_labels.CLASSES,
    teacher_additive=teacher_labels.CLASSES,
    recolour=shift_tasks.RECOLOUR_CLASSES,
    recolour_opponent=shift_tasks.RECOLOUR_CLASSES,
    gratings=shift_tasks.GRATING_CLASSES,
    gratings_fine=shift_tasks.GRATING_FINE_CLASSES)
MAKERS = dict(
    recolour=shift_tasks.make_recolour,
    recolour_opponent=shift_tasks.make_recolour_opponent,
    gratings=shift_tasks.make_gratings,
    gratings_fine=shift_tasks.make_gratings_fine)
DEFAULT_SPLITS = dict(train=1600, val=400, test=1000)
TEACHER_DEFAULTS = dict(rank=2, eps=0.5, teacher_seed=0)
FORMAT_VERSION = 1
FEATURE_DIM = 320  # the start backbone's (ConvNeXt-V2-atto) pooled features


def check_task(task, owner=''):
    """Raise :class:`TaskSettingError` unless ``task`` is one of :data:`CLASSES`' keys."""
    if task not in CLASSES:
        raise TaskSettingError(f'{owner}task must be one of {", ".join(CLASSES)}, got {task!r}')


def _images(task, split, num_images, size, seed):
    """(N, size, size, 3) BGR uint8 images of one split and their classes (None: a teacher's)."""
    rng = np.random.default_rng([seed, sum(map(ord, split)), sum(map(ord, task))])
    if task in TEACHER_TASKS:
        return np.stack([transfer_image(rng, size)[0] for _ in range(num_images)]), None
    drawn = [MAKERS[task](rng, size) for _ in range(num_images)]
    return np.stack([img for img, _ in drawn]), np.array([cat for _, cat in drawn])


def _write(root, task, splits, size, seed, teacher):
    images, labels = {}, {}
    for split, n in splits.items():
        os.makedirs(osp.join(root, split))
        imgs, labels[split] = _images(task, split, n, size, seed)
        for i, img in enumerate(imgs):
            cv2.imwrite(osp.join(root, f'{split}/{i:06d}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        # the teacher labels what the student will read: the decoded JPEG files
        images[split] = np.stack(
            [cv2.imread(osp.join(root, f'{split}/{i:06d}.jpg'))
             for i in range(n)]) if teacher else None
    if teacher:
        start = teacher_labels.start_backbone(teacher['start'])
        model = teacher_labels.make_teacher(teacher['start'], TEACHER_TASKS[task], teacher['rank'],
                                            teacher['eps'], teacher['teacher_seed'])
        feats = {
            s: (teacher_labels.features(model,
                                        images[s]), teacher_labels.features(start, images[s]))
            for s in splits
        }
        dirs, medians = teacher_labels.label_directions(*feats['train'])
        labels = {s: teacher_labels.quadrant_labels(feats[s][0], dirs, medians) for s in splits}
    for split, n in splits.items():
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.writelines(f'{split}/{i:06d}.jpg {int(labels[split][i])}\n' for i in range(n))


def ensure_capacity_task(root, task, splits=None, image_size=64, seed=0, start=None, **teacher):
    """Write ``task`` under ``root`` unless it is there; returns ``root``. Teacher tasks need
    ``start`` (the start backbone's checkpoint) and take ``rank``, ``eps``, ``teacher_seed``."""
    check_task(task)
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    if 'train' not in splits or not all(isinstance(n, int) and n > 0 for n in splits.values()):
        raise TaskSettingError(f'splits must include train and be positive ints, got {splits}')
    if not 32 <= image_size <= 1024:
        raise TaskSettingError(f'image_size must be in [32, 1024], got {image_size}')
    stamp = dict(
        version=FORMAT_VERSION,
        task=f'capacity_cls/{task}',
        splits=splits,
        image_size=image_size,
        seed=seed)
    if task in TEACHER_TASKS:
        unknown = set(teacher) - set(TEACHER_DEFAULTS)
        if unknown:
            raise TaskSettingError(f'unknown teacher settings {sorted(unknown)}; '
                                   f'use {", ".join(TEACHER_DEFAULTS)}')
        if not start or not osp.isfile(start):
            raise TaskSettingError(f'task {task!r} needs start=<the start backbone checkpoint>, '
                                   f'got {start!r}')
        if splits['train'] <= FEATURE_DIM + 1:
            raise TaskSettingError(
                f'task {task!r} needs more train images than the features have dimensions + 1 '
                f'({FEATURE_DIM + 1}) to find its labels, got {splits["train"]}: enlarge '
                'splits.train')
        teacher = dict(TEACHER_DEFAULTS, **teacher, start=start)
        stamp.update({k: teacher[k] for k in TEACHER_DEFAULTS}, start_sha256=weights_sha256(start))
    elif teacher:
        raise TaskSettingError(f'task {task!r} takes no teacher settings, got {sorted(teacher)}')
    return generate_once(root, stamp,
                         lambda tmp: _write(tmp, task, splits, image_size, seed, teacher))


def task_cfg_options(task):
    """The ``--cfg-options`` (``key=value`` strings) that point a config of
    ``projects/liera_study/configs/capacity/`` at ``task``: its name in the three dataloaders
    and its number of classes in the head and the data preprocessor."""
    check_task(task)
    keys = [f'{split}_dataloader.dataset.task' for split in ('train', 'val', 'test')]
    return [f'{k}={task}' for k in keys] + [
        f'model.{part}.num_classes={len(CLASSES[task])}' for part in ('head', 'data_preprocessor')
    ]


@DATASETS.register_module()
class CapacityClsDataset(CustomDataset):
    """mmpretrain ``CustomDataset`` over one capacity-study task, generated under
    ``{data_root}/{task}`` if missing; ``ann_file`` is a split's list (``'train.txt'``, ...).

    Args:
        task (str): one of :data:`CLASSES`' keys.
        synthetic (dict): ``splits``, ``image_size``, ``seed`` of :func:`ensure_capacity_task`.
        teacher (dict): ``start``, ``rank``, ``eps``, ``teacher_seed``, read by the teacher
            tasks only (so one config serves every task).
    """

    MAKES_ITS_DATA = True  # (the data check skips its files)

    def __init__(self,
                 *args,
                 data_root='',
                 task='',
                 synthetic=None,
                 teacher=None,
                 metainfo=None,
                 **kwargs):
        if not data_root:
            raise TaskSettingError('CapacityClsDataset needs data_root (where to write the data)')
        check_task(task, owner='CapacityClsDataset: ')
        settings = dict(synthetic or {})
        if task in TEACHER_TASKS:
            settings.update(teacher or {})
        root = ensure_capacity_task(osp.join(data_root, task), task, **settings)
        metainfo = dict(classes=CLASSES[task], **(metainfo or {}))
        super().__init__(*args, data_root=root, metainfo=metainfo, **kwargs)

    @classmethod
    def plain_dataset(cls, cfg: dict) -> dict:
        """The plain dataset config that reads the data this one wrote (merge-and-export):
        mmpretrain's ``CustomDataset`` at ``{data_root}/{task}`` with the task's classes."""
        cfg = dict(cfg, type='CustomDataset')
        task = cfg.pop('task')
        cfg.pop('synthetic', None)
        cfg.pop('teacher', None)
        cfg['data_root'] = osp.join(cfg['data_root'], task)
        cfg.setdefault('metainfo', dict(classes=list(CLASSES[task])))
        return cfg
