"""Draw the ground truth of a config's dataset: the first N images in one grid picture.

    python tools/browse_dataset.py CONFIG [--split train|val|test] [--num 4] [--cols 4]
                                   [--out data_preview.png] [--cfg-options k=v ...]

As mmdet's ``tools/analysis_tools/browse_dataset.py``, but on the raw images (no training
augmentation) and into one file: boxes, masks and class names with mmdet's DetLocalVisualizer.
Datasets that generate their data (the demo, the transfer task) are made first if missing.
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

    import os

    import cv2
    import mmcv
    import numpy as np
    from mmdet.models.utils import mask2ndarray
    from mmdet.registry import DATASETS
    from mmdet.structures.bbox import BaseBoxes
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.registry import init_default_scope

    from mmliera.apis import load_config
    from mmliera.checkpoint.atomic import atomic_path

    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        raise SystemExit(f'error: {args.config} has no {args.split}_dataloader; '
                         'choose another --split')
    ds_cfg = loader['dataset']
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
    print(f'wrote {args.out}: {min(args.num, len(dataset))} {args.split} images of '
          f'{type(dataset).__name__} with their ground truth')


if __name__ == '__main__':
    exit_on_user_error(main)()
