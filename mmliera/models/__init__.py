from .adapt import ADAPTER_DEFAULTS, adapt_module, adapter_config
from .backbones import LieRAConvNeXt

__all__ = ['ADAPTER_DEFAULTS', 'adapt_module', 'adapter_config', 'LieRAConvNeXt']
