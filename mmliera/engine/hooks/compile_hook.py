"""LieRACompileHook: torch.compile on the adapted parts of the model, from a config.

    custom_hooks = [dict(type='LieRACompileHook', parts=['backbone'])]       # inductor
    custom_hooks = [dict(type='LieRACompileHook', parts=['backbone', 'neck'],
                         mode='max-autotune-no-cudagraphs')]               # any torch.compile arg

Instead of mmengine's ``compile=True``, which compiles a detector's whole ``train_step`` (its
proposals, sampling and RoI ops are data-dependent), only the named parts run compiled
(:func:`mmliera.models.compile_parts`: in place, the same module, parameters and state_dict
keys, so the optimizer, DDP, checkpoints, resume, adapter files and merging are unchanged).
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...models.compile_parts import check_compile_kwargs, check_cpp_compiler, compile_parts
from ...models.peft import adapter_layers
from ...registry import HOOKS


@HOOKS.register_module()
class LieRACompileHook(Hook):
    """Compile ``parts`` of the (unwrapped) model before the run (training, validation, test).

    Args:
        parts (list[str]): submodule names, dotted to reach inside (``'backbone'``,
            ``'backbone.stages'``, ``'neck'``). Default: the backbone.
        **compile_kwargs: ``torch.compile`` settings (``backend``, default 'inductor';
            ``mode``, ``dynamic``, ``fullgraph``, ``options``).

    The first iterations are slow (each part compiles for training, then again for
    evaluation); later ones reuse the compiled code (inductor also caches it on disk).
    """

    priority = 'VERY_LOW'  # after hooks that copy the model (copies run uncompiled anyway)

    def __init__(self, parts=('backbone', ), **compile_kwargs):
        check_compile_kwargs(compile_kwargs, 'LieRACompileHook')
        if isinstance(parts, str):
            parts = [parts]
        self.parts = list(parts)
        self.compile_kwargs = compile_kwargs
        self.compiled = {}

    def before_run(self, runner):
        if self.compiled:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        device = next(model.parameters()).device
        if self.compile_kwargs.get('backend', 'inductor') == 'inductor' and \
                device.type == 'cpu':
            check_cpp_compiler('LieRACompileHook')
        self.compiled = compile_parts(model, self.parts, 'LieRACompileHook', **self.compile_kwargs)
        counts = ', '.join(f'{n} ({len(adapter_layers(m))} adapted layers)'
                           for n, m in self.compiled.items())
        settings = ', '.join(f'{k}={v!r}' for k, v in self.compile_kwargs.items()) or 'defaults'
        runner.logger.info(f'LieRACompileHook: compiled {counts} with torch.compile '
                           f'({settings}); the first iterations of training and of each '
                           'evaluation compile and are slow')
