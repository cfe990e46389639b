"""LieRA adapters in plain PyTorch: formulas, layers, settings, injection."""
from .config import AdapterConfig, AdapterConfigError
from .formulas import MODES, apply_update, compute_dtype, delta_weight, update_only, updated_weight
from .inject import (adapter_layers, init_adapters_from_weights, inject_adapters, merge_adapters,
                     unmerge_adapters, warn_exact_zeros)
from .layers import LieRAConv2d, LieRALayer, LieRALinear
from .names import is_adapter_factor, is_adapter_key

__all__ = [
    'AdapterConfig', 'AdapterConfigError', 'MODES', 'apply_update', 'compute_dtype', 'delta_weight',
    'update_only', 'updated_weight', 'adapter_layers', 'inject_adapters', 'merge_adapters',
    'unmerge_adapters', 'LieRAConv2d', 'LieRALayer', 'LieRALinear', 'is_adapter_factor',
    'is_adapter_key', 'warn_exact_zeros', 'init_adapters_from_weights'
]
