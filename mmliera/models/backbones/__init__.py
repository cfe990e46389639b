from .liera_convnext import LieRAConvNeXt

__all__ = ['LieRAConvNeXt']
