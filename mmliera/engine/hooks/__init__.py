from .freeze_hook import LieRAFreezeHook
from .pretrain_backbone_hook import PretrainBackboneHook, export_backbone

__all__ = ['LieRAFreezeHook', 'PretrainBackboneHook', 'export_backbone']
