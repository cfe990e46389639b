from .adapt import (ADAPTER_DEFAULTS, adapt_module, adapter_config, finish_weights_init,
                    inject_adapters)
from .backbones import LieRAConvNeXt, build_liera_backbone
from .builder import build_model
from .compile_parts import CompileSettingError, compile_parts, compiled_parts, uncompile_parts
from .detectors import adapt_detector, build_liera_detector
from .freeze_policy import FreezePolicy, FreezePolicyError
from .peft import AdapterConfig, AdapterConfigError

__all__ = [
    'ADAPTER_DEFAULTS', 'adapt_module', 'inject_adapters', 'build_model', 'adapter_config',
    'finish_weights_init', 'LieRAConvNeXt', 'build_liera_backbone', 'adapt_detector',
    'build_liera_detector', 'FreezePolicy', 'FreezePolicyError', 'AdapterConfig',
    'AdapterConfigError', 'CompileSettingError', 'compile_parts', 'compiled_parts',
    'uncompile_parts'
]
