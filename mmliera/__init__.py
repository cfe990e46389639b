"""mmliera: LieRA (Lie-group parameter-efficient fine-tuning) for MMDetection.

Importing this package checks the environment and registers every mmliera component in mmdet's
registries, so an mmdet-scoped config only needs
``custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)``.
"""
import warnings

# mmengine 0.10.7 imports pkg_resources (we pin setuptools<81 for it): its deprecation notice is
# known and handled, not news for users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from .environment import check_environment, environment_summary  # noqa: E402
from .version import __version__  # noqa: E402

check_environment()

from .adapters import (LieRAConv2d, LieRALayer, LieRALinear,  # noqa: E402
                       adapter_layers, inject_adapters, merge_adapters, unmerge_adapters)
from .datasets import SyntheticCocoDataset, ensure_synthetic_coco  # noqa: E402
from .checkpoint import (AdapterCheckpointError, load_adapter_checkpoint,  # noqa: E402
                         save_adapter_checkpoint)
from .engine import AdapterCheckpointHook, LieRAFreezeHook, LieRARunner  # noqa: E402
from .freeze import FreezePolicy  # noqa: E402
from .models import LieRAConvNeXt, adapt_module  # noqa: E402

__all__ = [
    '__version__', 'check_environment', 'environment_summary', 'LieRAConv2d', 'LieRALayer',
    'LieRALinear', 'adapter_layers', 'inject_adapters', 'merge_adapters', 'unmerge_adapters',
    'LieRAFreezeHook', 'LieRARunner', 'FreezePolicy', 'LieRAConvNeXt', 'adapt_module',
    'SyntheticCocoDataset', 'ensure_synthetic_coco', 'AdapterCheckpointError',
    'load_adapter_checkpoint', 'save_adapter_checkpoint', 'AdapterCheckpointHook'
]
