"""Build a config's model for Python users and tools (no training machinery)."""
import os.path as osp
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.config import Config

from ..models.builder import build_model
from ..utils.errors import UserError


class ConfigNotFoundError(UserError, FileNotFoundError):
    """A config path that does not exist."""


class ConfigCheckError(UserError, ValueError):
    """A config's own check of its settings failed (an ``assert`` in the config file, e.g. the
    VTAB-1k configs' check of ``VTAB_TASK``)."""


def load_config(config, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile(config)`` (or ``config`` itself) with ``cfg_options`` merged."""
    if isinstance(config, (str, bytes)) or hasattr(config, '__fspath__'):
        if not osp.isfile(config):
            raise ConfigNotFoundError(f'config {config} does not exist; pass the path of a '
                                      'config file (e.g. configs/liera_maskrcnn_convnextv2.py)')
        try:
            config = Config.fromfile(config)
        except AssertionError as e:
            raise ConfigCheckError(f'{e} (a check in {config})') from None
    if cfg_options:
        config.merge_from_dict(cfg_options)
    return config


def build_model_from_config(config, cfg_options: Optional[dict] = None) -> Tuple[Config, nn.Module]:
    """(cfg, model): the config's model built in its default scope, with no weights loaded."""
    cfg = load_config(config, cfg_options)
    return cfg, build_model(cfg)
