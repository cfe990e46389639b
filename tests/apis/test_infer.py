"""tools/infer.py: pictures + JSON from an mmengine checkpoint, adapter safetensors, export."""
import json
import os.path as osp

import numpy as np
import pytest
from helpers import tool_in_process, tool_output
from mmengine.config import Config
from PIL import Image
from pycocotools import mask as mask_utils

from mmliera import AdapterCheckpointError
from mmliera.apis.inference import LieRAInferencer, predict
from mmliera.checkpoint.fit import CheckpointMismatchError

pytestmark = pytest.mark.slow  # a trained run (conftest.py: tiny_run) and inference

# tools/infer.py runs in this process (tests/support/helpers.py: tool_in_process); that a real
# process shows one error line and no traceback is tests/tools/test_tool_errors.py's check

CLASSES = ['square', 'disc', 'triangle']
THR = 0.05  # the model trains 2 iterations: its scores are low, but it predicts


@pytest.fixture(scope='module')
def reference(tiny_run, tmp_path_factory):
    """Predictions of the run's mmengine checkpoint on two val images, in-process."""
    images = [str(tiny_run['val'] / f'{i:06d}.jpg') for i in range(2)]
    inferencer = LieRAInferencer(tiny_run['cfg'], tiny_run['ckpt'], device='cpu')
    return predict(inferencer, images, str(tmp_path_factory.mktemp('ref')), THR)


def check_output(out_dir, images):
    """Pictures of the input size with something drawn; a JSON listing every instance."""
    data = json.loads((out_dir / 'predictions.json').read_text())
    assert data['classes'] == CLASSES and data['score_thr'] == THR
    assert [e['img_path'] for e in data['images']] == images
    for entry, img in zip(data['images'], images):
        src = Image.open(img)
        vis = Image.open(out_dir / 'vis' / osp.basename(img))
        assert vis.size == src.size == (entry['width'], entry['height']) == (256, 256)
        diff = np.abs(np.asarray(vis.convert('RGB'), np.float32) - np.asarray(src, np.float32))
        diff = diff.max(axis=2)
        # drawn where the predictions are (boxes, masks, labels within 16 px), the rest is the
        # input up to the JPEG re-encoding (a colour swap or a shifted picture fails this)
        near = np.zeros(diff.shape, bool)
        for x0, y0, x1, y1 in entry['bboxes']:
            near[max(0, int(y0) - 16):int(y1) + 17, max(0, int(x0) - 16):int(x1) + 17] = True
        away = diff[~near].mean()  # JPEG noise: about 3 (a colour swap: tens)
        assert (~near).mean() > 0.1 and away < 6, 'drawn away from the predictions'
        assert diff[near].mean() > away + 5, 'nothing drawn over the predictions'
        n = len(entry['scores'])
        assert n > 0
        assert len(entry['bboxes']) == len(entry['labels']) == len(entry['masks']) == n
        assert entry['label_names'] == [CLASSES[label] for label in entry['labels']]
        assert all(THR <= s <= 1 for s in entry['scores'])
        for x0, y0, x1, y1 in entry['bboxes']:
            assert -1 <= x0 <= x1 <= 257 and -1 <= y0 <= y1 <= 257
        masks = mask_utils.decode(
            [dict(size=m['size'], counts=m['counts'].encode()) for m in entry['masks']])
        assert masks.shape == (256, 256, n) and masks.any()
    return data


def same_predictions(a, b):
    assert a['labels'] == b['labels']
    np.testing.assert_allclose(a['bboxes'], b['bboxes'], atol=0.02)
    np.testing.assert_allclose(a['scores'], b['scores'], atol=2e-4)


def test_train_ends_saying_how_to_make_pictures(tiny_run):
    out = tiny_run['out']
    assert 'tools/infer.py' in out and 'tools/analysis_tools/plot_curves.py' in out
    assert f"{tiny_run['ckpt']} {tiny_run['val']}" in out


def test_mmengine_checkpoint_on_a_folder(tiny_run, reference, tmp_path):
    out = tool_output('infer', tiny_run['cfg'], tiny_run['ckpt'], tiny_run['val'], '--out-dir',
                      tmp_path, '--score-thr', THR, '--device', 'cpu')
    images = [str(tiny_run['val'] / f'{i:06d}.jpg') for i in range(4)]
    data = check_output(tmp_path, images)
    assert f'4 images, {sum(len(e["scores"]) for e in data["images"])} instances' in out
    for a, b in zip(data['images'], reference['images']):
        same_predictions(a, b)


def test_adapter_safetensors_on_a_glob(tiny_run, reference, tmp_path):
    pattern = str(tiny_run['val'] / '00000[01].jpg')
    tool_output('infer', tiny_run['cfg'], tiny_run['adapters'], pattern, '--out-dir', tmp_path,
                '--score-thr', THR)
    data = check_output(tmp_path, [str(tiny_run['val'] / f'{i:06d}.jpg') for i in range(2)])
    for a, b in zip(data['images'], reference['images']):
        same_predictions(a, b)  # base weights from the config's init_cfg + the adapters


def test_exported_plain_model(tiny_run, tiny_export, reference, tmp_path):
    export = tiny_export
    img = str(tiny_run['val'] / '000000.jpg')
    tool_output('infer', export / 'config.py', export / 'model.pth', img, '--out-dir',
                tmp_path / 'out', '--score-thr', THR)
    data = check_output(tmp_path / 'out', [img])
    same_predictions(data['images'][0], reference['images'][0])
    # each file only with its own config
    with pytest.raises(CheckpointMismatchError, match='none of its LieRA adapter tensors'):
        LieRAInferencer(tiny_run['cfg'], str(export / 'model.pth'), device='cpu')
    with pytest.raises(CheckpointMismatchError, match='holds LieRA adapter tensors'):
        LieRAInferencer(str(export / 'config.py'), tiny_run['ckpt'], device='cpu')


def test_no_images_one_clear_error(tiny_run, tmp_path):
    code, _, err = tool_in_process('infer', tiny_run['cfg'], tiny_run['ckpt'],
                                   tmp_path / 'nothing' / '*.jpg', '--out-dir', tmp_path / 'o')
    assert code == 1 and err.strip().splitlines()[-1].startswith(
        f"error: no images found for '{tmp_path / 'nothing' / '*.jpg'}': give image files"), err
    assert not (tmp_path / 'o').exists()


def test_checkpoint_that_does_not_fit_one_clear_error(tiny_run, tmp_path):
    backbone = tiny_run['pretrained']
    code, _, err = tool_in_process('infer', tiny_run['cfg'], backbone, tiny_run['val'], '--out-dir',
                                   tmp_path / 'o')
    last = err.strip().splitlines()[-1]
    assert code == 1 and 'Traceback' not in err, err
    assert last.startswith(f'error: checkpoint {backbone} has no weights for backbone.*.lora_* '
                           '(80), neck.* (16), roi_head.* (16), rpn_head.* (6)'), last
    assert 'pass a checkpoint written by tools/train.py' in last
    assert not (tmp_path / 'o').exists()
    cfg = Config.fromfile(tiny_run['cfg'])
    cfg.model.backbone.adapter.rank = 4
    with pytest.raises(AdapterCheckpointError, match='rank=8 in the file but 4 in the model'):
        LieRAInferencer(cfg, tiny_run['adapters'], device='cpu')
