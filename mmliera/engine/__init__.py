from .hooks import (AdapterCheckpointHook, LieRAFreezeHook, PretrainBackboneHook,
                    export_backbone)
from .runner import LieRARunner
from .safe_load import mmengine_safe_globals, safe_load

__all__ = [
    'AdapterCheckpointHook', 'LieRAFreezeHook', 'PretrainBackboneHook', 'export_backbone', 'LieRARunner',
    'mmengine_safe_globals', 'safe_load'
]
