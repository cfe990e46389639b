"""The LieRA study project: the embedded transfer tasks (registered on import, for the study's
configs: ``custom_imports=dict(imports=['mmliera', 'projects.liera_study.liera_study'])``) and
the method comparison (:mod:`.compare`, behind ``projects/liera_study/tools/compare_methods.py``;
not imported here). mmliera never imports this package."""
from .datasets import (TransferClsDataset, TransferCocoDataset, ensure_transfer_cls,
                       ensure_transfer_coco)

__all__ = [
    'TransferCocoDataset', 'ensure_transfer_coco', 'TransferClsDataset', 'ensure_transfer_cls'
]
