"""Python API: build a config's model, load any weight file, predict on pictures."""
from .inference import InferenceInputError, LieRAInferencer, find_images, predict
from .model import ConfigNotFoundError, build_model, build_model_from_config, load_config
from .multi_adapter import MultiAdapterInferencer, predict_adapters

__all__ = [
    'InferenceInputError', 'LieRAInferencer', 'find_images', 'predict', 'ConfigNotFoundError',
    'build_model', 'build_model_from_config', 'load_config', 'MultiAdapterInferencer',
    'predict_adapters'
]
