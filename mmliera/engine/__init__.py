from .hooks import LieRAFreezeHook
from .runner import LieRARunner

__all__ = ['LieRAFreezeHook', 'LieRARunner']
