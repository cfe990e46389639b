from .freeze_hook import LieRAFreezeHook

__all__ = ['LieRAFreezeHook']
