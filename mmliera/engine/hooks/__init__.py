from .adapter_checkpoint_hook import AdapterCheckpointHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .compile_hook import LieRACompileHook
from .exact_resume_hook import ExactResumeHook
from .freeze_hook import LieRAFreezeHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .pretrain_backbone_hook import PretrainBackboneHook, export_backbone

__all__ = [
    'AdapterCheckpointHook', 'AtomicCheckpointHook', 'ExactResumeHook', 'NonFiniteLossError',
    'NonFiniteLossHook', 'LieRACompileHook', 'LieRAFreezeHook', 'PretrainBackboneHook',
    'export_backbone'
]
