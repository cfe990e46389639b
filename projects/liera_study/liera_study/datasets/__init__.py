from .transfer_cls import TransferClsDataset, ensure_transfer_cls
from .transfer_coco import TransferCocoDataset, ensure_transfer_coco

__all__ = [
    'TransferCocoDataset', 'ensure_transfer_coco', 'TransferClsDataset', 'ensure_transfer_cls'
]
