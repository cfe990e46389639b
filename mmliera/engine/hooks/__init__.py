from .adapter_checkpoint_hook import AdapterCheckpointHook
from .exact_resume_hook import ExactResumeHook
from .freeze_hook import LieRAFreezeHook
from .pretrain_backbone_hook import PretrainBackboneHook, export_backbone

__all__ = [
    'AdapterCheckpointHook', 'ExactResumeHook', 'LieRAFreezeHook', 'PretrainBackboneHook',
    'export_backbone'
]
