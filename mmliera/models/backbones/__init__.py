from .liera_backbone import build_liera_backbone
from .liera_convnext import LieRAConvNeXt

__all__ = ['LieRAConvNeXt', 'build_liera_backbone']
