from .capacity_cls import CapacityClsDataset, ensure_capacity_task, task_cfg_options
from .transfer_cls import TransferClsDataset, ensure_transfer_cls
from .transfer_coco import TransferCocoDataset, ensure_transfer_coco

__all__ = [
    'CapacityClsDataset', 'ensure_capacity_task', 'task_cfg_options', 'TransferCocoDataset',
    'ensure_transfer_coco', 'TransferClsDataset', 'ensure_transfer_cls'
]
