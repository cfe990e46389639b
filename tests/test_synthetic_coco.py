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
    assert sorted(fa) == sorted(['DONE.json', 'annotations/instances_train.json',
                                 'annotations/instances_val.json', 'train/000000.jpg',
                                 'train/000001.jpg', 'train/000002.jpg', 'val/000000.jpg',
                                 'val/000001.jpg'])
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
