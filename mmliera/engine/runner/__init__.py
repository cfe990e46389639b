from .liera_runner import LieRARunner

__all__ = ['LieRARunner']
