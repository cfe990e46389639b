"""mmliera: LieRA (Lie-group parameter-efficient fine-tuning) for MMDetection.

Importing this package checks the environment and registers every mmliera component in mmdet's
registries, so an mmdet-scoped config only needs
``custom_imports = dict(imports=['mmliera'], allow_failed_imports=False)``.

Layers (a module imports only its own layer and those below; tests/package/test_import_layers.py):
``utils``, ``registry`` -> ``models`` (``models/peft``: formulas, layers, AdapterConfig,
injection, standing alone; adapted backbones and detectors, FreezePolicy) and ``datasets`` ->
``checkpoint`` (adapter files, fit checks, export, resume) -> ``engine`` (runner, hooks) ->
``apis`` (build, load, predict) -> ``cli`` (command lines, not imported here; ``tools/``).
See docs/layout.md.
"""
import warnings

from .utils.environment import check_environment, environment_summary
from .version import __version__

check_environment()

# mmengine 0.10.7 imports pkg_resources (we pin setuptools<81 for it) when a config names an
# ``mmdet::`` base: its deprecation notice, shown once on that first import, is known and
# handled, so it is imported here under a filter scoped to these imports (the global warning
# filters stay as they were).
with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    import pkg_resources  # noqa: F401

    from .checkpoint import AdapterCheckpointError, load_adapter_checkpoint, save_adapter_checkpoint
    from .checkpoint.safe_load import register_safe_globals
    from .datasets import SyntheticCocoDataset, ensure_synthetic_coco
    from .engine import AdapterCheckpointHook, LieRACompileHook, LieRAFreezeHook, LieRARunner
    from .models import (AdapterConfig, FreezePolicy, LieRAConvNeXt, adapt_module, compile_parts,
                         inject_adapters)
    from .models.peft import (LieRAConv2d, LieRALayer, LieRALinear, adapter_layers, merge_adapters,
                              unmerge_adapters)

# mmengine checkpoints (their message hub's HistoryBuffer, numpy arrays) load through torch's
# weights-only unpickler everywhere, with this exact allow-list and nothing more
register_safe_globals()

__all__ = [
    '__version__', 'check_environment', 'environment_summary', 'LieRAConv2d', 'LieRALayer',
    'LieRALinear', 'adapter_layers', 'inject_adapters', 'merge_adapters', 'unmerge_adapters',
    'LieRAFreezeHook', 'LieRARunner', 'FreezePolicy', 'LieRAConvNeXt', 'adapt_module',
    'SyntheticCocoDataset', 'ensure_synthetic_coco', 'AdapterCheckpointError',
    'load_adapter_checkpoint', 'save_adapter_checkpoint', 'AdapterCheckpointHook', 'AdapterConfig',
    'LieRACompileHook', 'compile_parts'
]
