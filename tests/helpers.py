"""Shared test helpers: configs and small models built from the real configs."""
import os
import re
import subprocess
import sys

from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIG = os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py')
DEMO = os.path.join(ROOT, 'configs', 'demo', 'liera_maskrcnn_convnextv2-atto_synthetic.py')
PRETRAIN = os.path.join(ROOT, 'configs', 'demo',
                        'full_maskrcnn_convnextv2-atto_synthetic-pretrain.py')


def atto_detector_cfg(config=PAPER_CONFIG, rank=2, **adapter):  # noqa: D401
    """The config's Mask R-CNN with an atto backbone and no pretrained download."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.arch = 'atto'
    cfg.model.backbone.init_cfg = None
    if 'adapter' in cfg.model.backbone:
        cfg.model.backbone.adapter.update(rank=rank, **adapter)
    cfg.model.neck.in_channels = [40, 80, 160, 320]
    return cfg


def run(cmd, env=None, timeout=900, expect_fail=False):
    """Run a command from the repo root with this checkout first on PYTHONPATH; returns output.

    ``env`` may set PYTHONPATH='' to run without the checkout (and tests/) on the path."""
    tests = os.path.join(ROOT, 'tests')
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, ROOT]))
    full_env.update(env or {})
    done = subprocess.run([sys.executable if c == 'python' else c for c in cmd],
                          capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)
    out = done.stdout + done.stderr
    assert (done.returncode != 0) if expect_fail else (done.returncode == 0), out[-6000:]
    return out


def maps(out):
    bbox = [float(x) for x in re.findall(r'coco/bbox_mAP: ([\d.]+)', out)]
    segm = [float(x) for x in re.findall(r'coco/segm_mAP: ([\d.]+)', out)]
    assert bbox and segm, out[-3000:]
    return bbox[-1], segm[-1]


def write_cfg(path, base, body=''):
    """A config file at ``path`` inheriting ``base`` plus ``body``."""
    path.write_text(f"_base_ = ['{base}']\n" + body)
    return str(path)
