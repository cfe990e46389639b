"""Build a config's model in its default scope (no weights initialised or loaded)."""
import torch.nn as nn
from mmengine.config import Config


def build_model(cfg: Config) -> nn.Module:
    """``cfg.model`` built in the config's default scope; no weights initialised or loaded."""
    from mmengine.registry import init_default_scope

    from ..registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)
