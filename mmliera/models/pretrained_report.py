"""One line per pretrained load into an adapted module, instead of a list of every adapter key.

A pretrained checkpoint has no ``lora_*`` tensors, so mmengine reports each of them as missing
("The model and loaded state dict do not match exactly" and hundreds of names). While
:func:`pretrained_load_report` is active, a load-state-dict post hook on the adapted module
(``register_load_state_dict_post_hook``, honoured by torch and mmengine) takes its adapter
tensors off the missing list and logs one info line: how many tensors loaded into the frozen
weights and how many adapter tensors start fresh (nothing when the checkpoint has the
adapters). Keys that are really missing or unexpected
stay in mmengine's warning.
"""
import contextlib
import logging

from mmengine.logging import print_log

from .peft.inject import adapter_layers
from .peft.names import is_adapter_key, suffixes


def _owned(key, names):
    """Whether ``key`` (relative to the loaded root) is one of ``names`` (relative to the
    module), i.e. ``key`` is ``name`` or ends with ``.name``."""
    return any(s in names for s in suffixes(key))


@contextlib.contextmanager
def pretrained_load_report(module):
    """Within this block, loads into ``module`` report its adapters in one info line."""
    layers = adapter_layers(module)
    if not layers or getattr(module, '_liera_load_report', False):
        yield  # nothing to report, or an outer block reports already
        return
    keys = [k for k in module.state_dict() if not k.endswith('num_batches_tracked')]
    adapter_keys = {k for k in keys if is_adapter_key(k)}
    base_keys = set(keys) - adapter_keys

    def report(mod, incompatible):
        missing = incompatible.missing_keys
        fresh = [k for k in missing if _owned(k, adapter_keys)]
        for k in fresh:
            missing.remove(k)
        lost = sum(1 for k in missing if _owned(k, base_keys))
        lost += len(getattr(mod, 'liera_recreated_keys', ()))  # a detector's new class layers
        if not fresh:  # a checkpoint with adapters (a trained model): nothing to say
            return
        print_log(
            f'{type(mod).__name__}: {len(base_keys) - lost} of {len(base_keys)} '
            f'tensors loaded into the frozen weights; {len(fresh)} adapter tensors '
            f'({len(layers)} LieRA layers) start fresh',
            logger='current',
            level=logging.INFO)

    handle = module.register_load_state_dict_post_hook(report)
    module._liera_load_report = True
    try:
        yield
    finally:
        handle.remove()
        module._liera_load_report = False
