"""ensure_synthetic_coco: deterministic files, refusal of mismatched data, valid COCO."""
import json
import os

import pytest

from mmliera.datasets.synthetic_coco import CLASSES, ensure_synthetic_coco

SMALL = dict(splits=dict(train=3, val=2), image_size=64)


def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            path = os.path.join(d, n)
            out[os.path.relpath(path, root)] = open(path, 'rb').read()
    return out


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = ensure_synthetic_coco(str(tmp_path / 'a'), **SMALL)
    b = ensure_synthetic_coco(str(tmp_path / 'b'), **SMALL)
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted([
        'DONE.json', 'annotations/instances_train.json', 'annotations/instances_val.json',
        'train/000000.jpg', 'train/000001.jpg', 'train/000002.jpg', 'val/000000.jpg',
        'val/000001.jpg'
    ])
    assert fa == fb
    c = files(ensure_synthetic_coco(str(tmp_path / 'c'), seed=1, **SMALL))
    assert c['train/000000.jpg'] != fa['train/000000.jpg']
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'c']  # no temporary folder left behind


def test_annotations_are_valid_coco(tmp_path):
    from pycocotools.coco import COCO
    root = ensure_synthetic_coco(str(tmp_path / 'd'), **SMALL)
    coco = COCO(os.path.join(root, 'annotations', 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert len(coco.getImgIds()) == 3 and coco.getAnnIds()
    for ann in coco.loadAnns(coco.getAnnIds()):
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and 0 <= x and x + w <= 64 and y + h <= 64
        assert coco.annToMask(ann).sum() > 0 and ann['area'] > 0


def test_existing_data_made_otherwise_is_refused_and_kept(tmp_path):
    root = ensure_synthetic_coco(str(tmp_path / 'e'), **SMALL)
    before = files(root)
    assert ensure_synthetic_coco(root, **SMALL) == root  # same settings: reused as is
    with pytest.raises(ValueError) as e:
        ensure_synthetic_coco(root, splits=SMALL['splits'], image_size=96)
    msg = str(e.value)
    assert "'image_size': 64" in msg and "'image_size': 96" in msg
    assert 'delete the folder or point data_root elsewhere' in msg
    with pytest.raises(ValueError, match="'seed': 0.*'seed': 3"):
        ensure_synthetic_coco(root, seed=3, **SMALL)
    assert files(root) == before
    stamp = json.loads(before['DONE.json'])
    assert stamp['splits'] == SMALL['splits'] and stamp['seed'] == 0


@pytest.mark.parametrize('kwargs,msg', [(dict(image_size=16), 'image_size must be in'),
                                        (dict(splits=dict(train=0)), 'split sizes must be')])
def test_bad_settings(tmp_path, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        ensure_synthetic_coco(str(tmp_path / 'f'), **kwargs)
    assert not (tmp_path / 'f').exists()


def test_transfer_task_is_deterministic_valid_coco_and_kept_apart_from_the_shapes(tmp_path):
    from pycocotools.coco import COCO

    from projects.liera_study.liera_study.datasets.transfer_coco import CLASSES as TARGET
    from projects.liera_study.liera_study.datasets.transfer_coco import ensure_transfer_coco
    small = dict(splits=dict(train=4, test=2), image_size=96)
    a = files(ensure_transfer_coco(str(tmp_path / 'a'), **small))
    assert a == files(ensure_transfer_coco(str(tmp_path / 'b'), **small))
    assert a['train/000000.jpg'] != files(
        ensure_transfer_coco(str(tmp_path / 'c'), seed=1, **small))['train/000000.jpg']
    assert json.loads(a['DONE.json'])['task'] == 'transfer'
    coco = COCO(str(tmp_path / 'a' / 'annotations' / 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(TARGET)
    assert not set(TARGET) & set(CLASSES)  # new classes
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(ann).sum() > 0 and ann['area'] > 0
    # a folder of the demo's shapes is not taken for the transfer task, nor the reverse
    shapes = ensure_synthetic_coco(str(tmp_path / 's'), splits=dict(train=4, test=2), image_size=96)
    with pytest.raises(ValueError, match="'task': 'transfer'"):
        ensure_transfer_coco(shapes, **small)
    with pytest.raises(ValueError, match='delete the folder'):
        ensure_synthetic_coco(str(tmp_path / 'a'), **small)


def test_transfer_images_differ_from_the_pretraining_statistics(tmp_path):
    """Textured objects: far more local contrast inside target objects than inside the flat
    pre-training shapes (what the backbone must adapt to)."""
    import cv2
    import numpy as np
    from pycocotools.coco import COCO

    from projects.liera_study.liera_study.datasets.transfer_coco import ensure_transfer_coco

    def inner_contrast(root, split):
        coco = COCO(os.path.join(root, 'annotations', f'instances_{split}.json'))
        out = []
        for ann in coco.loadAnns(coco.getAnnIds()):
            img = cv2.imread(os.path.join(root, split, coco.imgs[ann['image_id']]['file_name']))
            mask = cv2.erode(coco.annToMask(ann), np.ones((5, 5), np.uint8)) > 0
            lap = np.abs(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)).mean(-1)
            if mask.sum() > 20:
                out.append(float(lap[mask].mean()))
        return np.median(out)

    split = dict(train=6)
    target = ensure_transfer_coco(str(tmp_path / 't'), splits=split, image_size=128)
    shapes = ensure_synthetic_coco(str(tmp_path / 's'), splits=split, image_size=128)
    assert inner_contrast(target, 'train') > 3 * inner_contrast(shapes, 'train')
