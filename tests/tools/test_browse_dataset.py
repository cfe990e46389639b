"""tools/analysis_tools/browse_dataset.py: the ground truth of a config's split, drawn into one
picture."""
import json
import os

import numpy as np
from helpers import STUDY_CONFIGS, tool_in_process, tool_path
from tiny_demo import tiny_transfer_cfg

TOOL = tool_path('browse_dataset')


def test_draws_the_ground_truth_of_the_first_images_in_a_grid(tmp_path):
    import cv2
    cfg = tiny_transfer_cfg(tmp_path, 'tiny', 'lora.py')
    out = tmp_path / 'preview.png'
    code, stdout, stderr = tool_in_process('browse_dataset', cfg, '--split', 'test', '--num', '3',
                                           '--cols', '2', '--out', out)
    assert code == 0, stderr
    assert 'wrote' in stdout and '3 test images of TransferCocoDataset' in stdout
    grid = cv2.imread(str(out))
    assert grid.shape == (256, 256, 3)  # 2 x 2 tiles of 128 px, the 4th one blank
    assert (grid[128:, 128:] == 255).all()
    raw = cv2.imread(str(tmp_path / 'data' / 'test' / '000000.jpg')).astype(int)
    changed = np.abs(grid[:128, :128].astype(int) - raw).max(axis=2) > 0
    # the drawing is the ground truth's: inside its boxes (labels within 16 px), nowhere else
    coco = json.loads((tmp_path / 'data' / 'annotations' / 'instances_test.json').read_text())
    image, = [i for i in coco['images'] if i['file_name'].endswith('000000.jpg')]
    near = np.zeros((128, 128), bool)
    boxes = [a['bbox'] for a in coco['annotations'] if a['image_id'] == image['id']]
    assert boxes
    for x, y, w, h in boxes:
        inside = np.zeros((128, 128), bool)
        inside[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
        assert changed[inside].mean() > 0.2  # the mask is filled over the object
        near[max(0, int(y) - 16):int(y + h) + 17, max(0, int(x) - 16):int(x + w) + 17] = True
    assert changed[near].any() and not changed[~near].any()
    assert not [f for f in os.listdir(tmp_path) if f.startswith('.')]  # no temporary left


def test_a_missing_split_is_one_error_line(tmp_path):
    cfg = tiny_transfer_cfg(
        tmp_path, 'tiny', 'lora.py', 'val_dataloader = None\nval_cfg = None\nval_evaluator = None\n'
        'train_cfg = dict(val_interval=1000)\n')
    code, _, stderr = tool_in_process('browse_dataset', cfg, '--split', 'val')
    assert code == 1
    assert stderr.strip().splitlines() == [
        f'error: {cfg} has no val_dataloader; choose another --split'
    ]


def test_a_classification_config_shows_each_image_with_its_class(tmp_path):
    """A classification config (mmpretrain's scope): the images enlarged to 192 px under a bar
    with the class index and name of its list line."""
    import cv2
    small = [f'val_dataloader.dataset.synthetic.splits.{s}=2' for s in ('train', 'val', 'test')]
    out = tmp_path / 'cls.png'
    code, stdout, stderr = tool_in_process(
        'browse_dataset',
        os.path.join(STUDY_CONFIGS, 'transfer_cls', 'frozen.py'),
        '--split',
        'val',
        '--num',
        '3',
        '--cols',
        '3',
        '--out',
        out,
        '--cfg-options',
        'val_dataloader.dataset.synthetic.image_size=32',
        *small,
        env=dict(MMLIERA_TRANSFER_CLS_DATA=f'{tmp_path}/data/'))
    assert code == 0, stderr
    assert 'wrote' in stdout and '2 val images of TransferClsDataset with their labels' in stdout
    grid = cv2.imread(str(out))
    assert grid.shape == (24 + 192, 3 * 192, 3)  # 32 px x 6, a bar of 24 px; the 3rd blank
    raw = cv2.imread(str(tmp_path / 'data' / 'val' / '000000.jpg'))
    assert (grid[24:, :192] == cv2.resize(raw, None, fx=6, fy=6,
                                          interpolation=cv2.INTER_NEAREST)).all()
    bar = grid[:24, :192]
    assert (bar < 128).any() and (bar == 255).mean() > 0.8  # black text on white
    assert (grid[:, 2 * 192:] == 255).all()
