from .synthetic_coco import SyntheticCocoDataset, ensure_synthetic_coco

__all__ = ['SyntheticCocoDataset', 'ensure_synthetic_coco']
