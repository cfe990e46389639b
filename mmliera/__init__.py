"""mmliera: LieRA (Lie-group parameter-efficient fine-tuning) for MMDetection.

Importing this package checks the environment and registers every mmliera component in mmdet's
registries, so an mmdet-scoped config only needs
``custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)``.
"""
from .environment import check_environment, environment_summary
from .version import __version__

check_environment()

from .adapters import (LieRAConv2d, LieRALayer, LieRALinear,  # noqa: E402
                       adapter_layers, inject_adapters, merge_adapters, unmerge_adapters)

__all__ = [
    '__version__', 'check_environment', 'environment_summary', 'LieRAConv2d', 'LieRALayer',
    'LieRALinear', 'adapter_layers', 'inject_adapters', 'merge_adapters', 'unmerge_adapters'
]
