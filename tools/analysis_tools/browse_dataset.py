"""Draw the ground truth of a config's dataset: the first N images in one grid picture.

    python tools/analysis_tools/browse_dataset.py CONFIG [--split train|val|test] [--num 4] [--cols
    4]
                                   [--out data_preview.png] [--cfg-options k=v ...]

As mmdet's ``tools/analysis_tools/browse_dataset.py``, but on the raw images (no training
augmentation) and into one file: boxes, masks and class names with mmdet's DetLocalVisualizer;
for a classification config (``default_scope='mmpretrain'``) each image with its class name
(small images enlarged to 192 px). Datasets that generate their data (the demo, the transfer
tasks) are made first if missing.
"""
import argparse

from mmengine.config import DictAction

import mmliera  # noqa: F401  (environment check, registration)
from mmliera.cli.errors import UsageError, exit_on_user_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='train')
    parser.add_argument('--num', type=int, default=4, help='images to draw (default 4)')
    parser.add_argument('--cols', type=int, default=4, help='images per row (default 4)')
    parser.add_argument('--out', default='data_preview.png', help='the picture to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    if args.num < 1 or args.cols < 1:
        raise UsageError('--num and --cols must be at least 1')

    import mmcv
    from mmdet.models.utils import mask2ndarray
    from mmdet.registry import DATASETS
    from mmdet.structures.bbox import BaseBoxes
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.registry import init_default_scope

    from mmliera.apis import load_config

    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        raise SystemExit(f'error: {args.config} has no {args.split}_dataloader; '
                         'choose another --split')
    ds_cfg = loader['dataset']
    if cfg.get('default_scope') == 'mmpretrain':
        return _write(args, *_label_tiles(ds_cfg, args.num), 'their labels')
    ds_cfg.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs')
    ]
    ds_cfg.test_mode = False  # keep the annotations
    dataset = DATASETS.build(ds_cfg)
    vis = DetLocalVisualizer(name='browse_dataset', line_width=2, alpha=0.5)
    vis.dataset_meta = dataset.metainfo
    tiles = []
    for i in range(min(args.num, len(dataset))):
        sample = dataset[i]['data_samples']
        gt = sample.gt_instances  # as mmdet's browse_dataset: plain tensors for the drawer
        if isinstance(gt.get('bboxes'), BaseBoxes):
            gt.bboxes = gt.bboxes.tensor
        if gt.get('masks') is not None:
            gt.masks = mask2ndarray(gt.masks).astype(bool)
        img = mmcv.imread(sample.img_path, channel_order='rgb')
        vis.add_datasample('gt', img, sample, draw_pred=False, show=False)
        tiles.append(vis.get_image())
    return _write(args, tiles, dataset, 'their ground truth')


def _label_tiles(ds_cfg, num):
    """(tiles, dataset): the first ``num`` images of a classification dataset (mmpretrain's
    registry), each with its class name in a bar above it."""
    import cv2
    import mmcv
    import numpy as np
    from mmpretrain.registry import DATASETS
    ds_cfg.pipeline = []
    dataset = DATASETS.build(ds_cfg)
    classes = dataset.metainfo.get('classes') or ()
    tiles = []
    for i in range(min(num, len(dataset))):
        info = dataset.get_data_info(i)
        img = mmcv.imread(info['img_path'], channel_order='rgb')
        scale = max(1, 192 // max(img.shape[:2]))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        label = int(info['gt_label'])
        name = classes[label] if label < len(classes) else str(label)
        bar = np.full((24, img.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, f'{label}: {name}', (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.concatenate([bar, img], 0))
    return tiles, dataset


def _write(args, tiles, dataset, what):
    """The tiles in rows of ``--cols``, written atomically to ``--out``."""
    import os

    import cv2
    import numpy as np

    from mmliera.checkpoint.atomic import atomic_path
    if not tiles:
        raise SystemExit(f'error: the {args.split} split has no images; choose another --split')
    shown = len(tiles)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    tiles = [
        np.pad(t, ((0, h - t.shape[0]), (0, w - t.shape[1]), (0, 0)), constant_values=255)
        for t in tiles
    ]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % args.cols)
    rows = [np.concatenate(tiles[r:r + args.cols], 1) for r in range(0, len(tiles), args.cols)]
    ext = os.path.splitext(args.out)[1] or '.png'
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(np.concatenate(rows, 0)[..., ::-1]))
    if not ok:
        raise SystemExit(f'error: cannot write a {ext} picture; use --out NAME.png or .jpg')
    with atomic_path(args.out) as tmp, open(tmp, 'wb') as f:
        f.write(encoded.tobytes())
    print(f'wrote {args.out}: {shown} {args.split} images of {type(dataset).__name__} with '
          f'{what}')


if __name__ == '__main__':
    exit_on_user_error(main)()
