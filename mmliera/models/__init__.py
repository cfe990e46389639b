from .adapt import ADAPTER_DEFAULTS, adapt_module, adapter_config
from .backbones import LieRAConvNeXt
from .liera_backbone import build_liera_backbone

__all__ = [
    'ADAPTER_DEFAULTS', 'adapt_module', 'adapter_config', 'LieRAConvNeXt', 'build_liera_backbone'
]
