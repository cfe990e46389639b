from .hooks import (AdapterCheckpointHook, AtomicCheckpointHook, ExactResumeHook, LieRACompileHook,
                    LieRAFreezeHook, NonFiniteLossError, NonFiniteLossHook, PretrainBackboneHook,
                    export_backbone)
from .runner import LieRARunner

__all__ = [
    'AdapterCheckpointHook', 'AtomicCheckpointHook', 'ExactResumeHook', 'LieRACompileHook',
    'LieRAFreezeHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'PretrainBackboneHook',
    'export_backbone', 'LieRARunner'
]
