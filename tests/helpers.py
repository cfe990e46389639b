"""Shared test helpers: configs and small models built from the real configs."""
import os

from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIG = os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py')


def atto_detector_cfg(config=PAPER_CONFIG, rank=2, **adapter):
    """The config's Mask R-CNN with an atto backbone and no pretrained download."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.arch = 'atto'
    cfg.model.backbone.init_cfg = None
    if 'adapter' in cfg.model.backbone:
        cfg.model.backbone.adapter.update(rank=rank, **adapter)
    cfg.model.neck.in_channels = [40, 80, 160, 320]
    return cfg
