from .hooks import LieRAFreezeHook, PretrainBackboneHook, export_backbone
from .runner import LieRARunner
from .safe_load import mmengine_safe_globals, safe_load

__all__ = [
    'LieRAFreezeHook', 'PretrainBackboneHook', 'export_backbone', 'LieRARunner',
    'mmengine_safe_globals', 'safe_load'
]
