"""LieRARunner: mmengine's Runner that applies the LieRA freezing policy before the DDP wrap."""
from mmdet.registry import RUNNERS
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

import torch

from ...adapters import init_from_weights
from ..hooks.exact_resume_hook import ExactResumeHook
from ..hooks.freeze_hook import LieRAFreezeHook
from ..safe_load import mmengine_safe_globals


def freeze_hooks_of(custom_hooks):
    """LieRAFreezeHook instances for the LieRAFreezeHook entries (dicts or hooks) of a list."""
    out = []
    for h in custom_hooks or ():
        if isinstance(h, LieRAFreezeHook):
            out.append(h)
        elif isinstance(h, dict) and h.get('type') in ('LieRAFreezeHook', LieRAFreezeHook):
            kw = {k: v for k, v in h.items() if k not in ('type', 'priority')}
            out.append(LieRAFreezeHook(**kw))
    return out


@RUNNERS.register_module()
class LieRARunner(Runner):
    """Runner whose ``wrap_model`` first applies every LieRAFreezeHook's policy.

    mmengine builds the model, wraps it in DDP (which registers the parameters that require
    grad) and later builds the optimizer (which skips frozen parameters), all before any hook
    runs. Applying the policy here puts it in force before either sees the model. The names of
    the parameters that train at wrap time are kept in ``liera_wrapped_trainable`` for the
    hook's check. ``build_optim_wrapper`` leaves frozen parameters out of the optimizer
    (mmengine's default constructor hands it ``model.parameters()``, frozen ones included).

    Checkpoints (``load_from``, ``resume``, pretrained ``init_cfg``) load with torch's
    ``weights_only=True`` unpickler plus the allow-list of :mod:`mmliera.engine.safe_load`, so
    mmengine's own checkpoints resume under torch >= 2.6 and untrusted pickles stay refused.
    An :class:`ExactResumeHook` is installed (RNG states in checkpoints) and data loaders get a
    private generator, so a resumed run continues exactly like an uninterrupted one.
    """

    def __init__(self, *args, **kwargs):
        self._liera_freeze_hooks = freeze_hooks_of(kwargs.get('custom_hooks'))
        super().__init__(*args, **kwargs)
        if not any(isinstance(h, ExactResumeHook) for h in self.hooks):
            self.register_hook(ExactResumeHook())

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        if isinstance(loader, torch.utils.data.DataLoader) and loader.generator is None:
            # iterators draw their base seed from here, not from the global RNG
            loader.generator = torch.Generator().manual_seed(0 if seed is None else seed)
        return loader

    def wrap_model(self, model_wrapper_cfg, model):
        inner = model.module if is_model_wrapper(model) else model
        if not is_model_wrapper(model):
            for hook in self._liera_freeze_hooks:
                hook.policy.apply(inner)
        self.liera_wrapped_trainable = {n for n, p in inner.named_parameters()
                                        if p.requires_grad}
        return super().wrap_model(model_wrapper_cfg, model)

    def build_optim_wrapper(self, optim_wrapper):
        built = super().build_optim_wrapper(optim_wrapper)
        wrappers = getattr(built, 'optim_wrappers', None)
        dropped = 0
        for w in (wrappers.values() if wrappers is not None else [built]):
            opt = w.optimizer
            for group in opt.param_groups:
                keep = [p for p in group['params'] if p.requires_grad]
                dropped += len(group['params']) - len(keep)
                group['params'] = keep
            opt.param_groups[:] = [g for g in opt.param_groups if g['params']]
        if dropped:
            self.logger.info(f'LieRARunner: {dropped} frozen parameter tensors left out of the '
                             'optimizer')
        return built

    def load_checkpoint(self, *args, **kwargs):
        with mmengine_safe_globals():
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, *args, **kwargs):
        with mmengine_safe_globals():
            return super().resume(*args, **kwargs)

    def _init_model_weights(self):
        with mmengine_safe_globals():
            super()._init_model_weights()
        # W-derived adapter state (PiSSA factors, DoRA magnitudes) follows the initialised
        # weights; resume / load_from restore trained values afterwards.
        init_from_weights(self.model.module if is_model_wrapper(self.model) else self.model)
