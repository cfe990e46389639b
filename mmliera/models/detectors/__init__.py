from .class_layers import class_dependent_layers, report_recreated_layers
from .frozen_norms import keep_frozen_norms_in_eval
from .liera_detector import LieRADetectorError, adapt_detector, build_liera_detector

__all__ = [
    'class_dependent_layers', 'report_recreated_layers', 'keep_frozen_norms_in_eval',
    'LieRADetectorError', 'adapt_detector', 'build_liera_detector'
]
