from .metainfo import config_dataset_meta
from .synthetic_coco import SyntheticCocoDataset, ensure_synthetic_coco

__all__ = ['config_dataset_meta', 'SyntheticCocoDataset', 'ensure_synthetic_coco']
