"""tools/browse_dataset.py: the ground truth of a config's split, drawn into one picture."""
import json
import os
import subprocess
import sys

import numpy as np
from helpers import ROOT
from tiny_demo import tiny_transfer_cfg

TOOL = os.path.join(ROOT, 'tools', 'browse_dataset.py')


def test_draws_the_ground_truth_of_the_first_images_in_a_grid(tmp_path):
    import cv2
    cfg = tiny_transfer_cfg(tmp_path, 'tiny', 'lora.py')
    out = tmp_path / 'preview.png'
    done = subprocess.run([
        sys.executable, TOOL, cfg, '--split', 'test', '--num', '3', '--cols', '2', '--out',
        str(out)
    ],
                          capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert 'wrote' in done.stdout and '3 test images of TransferCocoDataset' in done.stdout
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
    done = subprocess.run([sys.executable, TOOL, cfg, '--split', 'val'],
                          capture_output=True,
                          text=True,
                          cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        f'error: {cfg} has no val_dataloader; choose another --split'
