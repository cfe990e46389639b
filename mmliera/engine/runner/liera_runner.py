"""LieRARunner: mmengine's Runner that applies the LieRA freezing policy before the DDP wrap,
and survives faults (atomic checkpoints, exact resume, a fallback for damaged checkpoints)."""
import contextlib
import logging
import os.path as osp

import torch
from mmengine.dist import is_main_process, master_only
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from ...checkpoint.atomic import atomic_path
from ...checkpoint.resume import find_resume_checkpoint, remove_partial_files
from ...checkpoint.safe_load import mmengine_safe_globals
from ...models.adapt import load_reports
from ...models.peft import init_adapters_from_weights
from ...registry import register_runner
from ..hooks.atomic_checkpoint_hook import AtomicCheckpointHook
from ..hooks.exact_resume_hook import ExactResumeHook
from ..hooks.freeze_hook import freeze_hooks_of
from ..hooks.nonfinite_loss_hook import NonFiniteLossHook
from ..worker_init import end_workers_with_process, reseed_workers_each_epoch
from .adapter_weight_decay import ADAPTER_DECAY_MULT, split_adapter_decay


class _DropFrozenSkips(logging.Filter):
    """Drops (and counts) mmengine's per-tensor "is skipped since its requires_grad=False"."""

    def __init__(self):
        super().__init__()
        self.dropped = 0

    def filter(self, record):
        if 'is skipped since its requires_grad=False' in record.getMessage():
            self.dropped += 1
            return False
        return True


@register_runner
class LieRARunner(Runner):
    """Runner whose ``wrap_model`` first applies every LieRAFreezeHook's policy.

    mmengine builds the model, wraps it in DDP (which registers the parameters that require
    grad) and later builds the optimizer (which skips frozen parameters), all before any hook
    runs. Applying the policy here puts it in force before either sees the model. The names of
    the parameters that train at wrap time are kept in ``liera_wrapped_trainable`` for the
    hook's check. ``build_optim_wrapper`` leaves frozen parameters out of the optimizer
    (mmengine's default constructor hands it ``model.parameters()``, frozen ones included) and
    trains adapter parameters without weight decay (``paramwise_cfg.adapter_decay_mult``,
    default 0: :mod:`.adapter_weight_decay`).

    Checkpoints (``load_from``, ``resume``, pretrained ``init_cfg``) load with torch's
    ``weights_only=True`` unpickler plus the allow-list of :mod:`mmliera.engine.safe_load`, so
    mmengine's own checkpoints resume under torch >= 2.6 and untrusted pickles stay refused.
    An :class:`ExactResumeHook` is installed (every rank's RNG states with each checkpoint) and
    data loaders get a private generator and persistent workers seeds per epoch, so a resumed
    run (by iteration or by epoch) continues exactly like an uninterrupted one; their workers end
    with their process (no orphan when a rank is killed).

    Faults: checkpoints are written to a temporary file and renamed (``save_checkpoint``), and
    ``CheckpointHook`` becomes :class:`AtomicCheckpointHook` (atomic ``last_checkpoint``).
    Auto-resume (``--resume``) takes the newest readable checkpoint, warning about damaged newer
    ones (:func:`mmliera.engine.resume.find_resume_checkpoint`). The default hook
    ``nonfinite_loss`` (:class:`NonFiniteLossHook`) stops at the first NaN / inf loss;
    ``default_hooks=dict(nonfinite_loss=None)`` turns it off. Pretrained loads into adapted
    backbones log one line instead of listing every adapter tensor as missing.
    """

    def __init__(self, *args, **kwargs):
        self._liera_freeze_hooks = freeze_hooks_of(kwargs.get('custom_hooks'))
        super().__init__(*args, **kwargs)
        if not any(isinstance(h, ExactResumeHook) for h in self.hooks):
            self.register_hook(ExactResumeHook())

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        if isinstance(loader, torch.utils.data.DataLoader):
            if loader.generator is None:
                # iterators draw their base seed from here, not from the global RNG
                loader.generator = torch.Generator().manual_seed(0 if seed is None else seed)
            end_workers_with_process(reseed_workers_each_epoch(loader))
        return loader

    def register_default_hooks(self, hooks=None):
        """mmengine's default hooks with an atomic CheckpointHook, plus ``nonfinite_loss``."""
        hooks = dict(hooks or {})
        guard = hooks.pop('nonfinite_loss', dict(type=NonFiniteLossHook))
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
        if isinstance(ckpt, dict) and ckpt.get('type') in ('CheckpointHook', CheckpointHook):
            hooks['checkpoint'] = dict(ckpt, type=AtomicCheckpointHook)
        super().register_default_hooks(hooks)
        if guard is not None:
            self.register_hook(guard)

    def wrap_model(self, model_wrapper_cfg, model):
        inner = model.module if is_model_wrapper(model) else model
        if not is_model_wrapper(model):
            for hook in self._liera_freeze_hooks:
                hook.policy.apply(inner)
        self.liera_wrapped_trainable = {n for n, p in inner.named_parameters() if p.requires_grad}
        return super().wrap_model(model_wrapper_cfg, model)

    def build_optim_wrapper(self, optim_wrapper):
        decay_mult = ADAPTER_DECAY_MULT
        if isinstance(optim_wrapper, dict) and isinstance(optim_wrapper.get('paramwise_cfg'), dict):
            paramwise = dict(optim_wrapper['paramwise_cfg'])
            decay_mult = paramwise.pop('adapter_decay_mult', decay_mult)
            optim_wrapper = dict(optim_wrapper, paramwise_cfg=paramwise)
        # mmengine's constructor with a paramwise_cfg logs one warning per frozen tensor
        # ("... is skipped since its requires_grad=False"): one info line below says it instead
        quiet = _DropFrozenSkips()
        logger = MMLogger.get_current_instance()
        logger.addFilter(quiet)
        try:
            built = super().build_optim_wrapper(optim_wrapper)
        finally:
            logger.removeFilter(quiet)
        wrappers = getattr(built, 'optim_wrappers', None)
        dropped = moved = 0
        for w in (wrappers.values() if wrappers is not None else [built]):
            opt = w.optimizer
            for group in opt.param_groups:
                keep = [p for p in group['params'] if p.requires_grad]
                dropped += len(group['params']) - len(keep)
                group['params'] = keep
            opt.param_groups[:] = [g for g in opt.param_groups if g['params']]
            moved += split_adapter_decay(opt, self._inner_model(), decay_mult)
        dropped += quiet.dropped
        if dropped:
            self.logger.info(f'LieRARunner: {dropped} frozen parameter tensors left out of the '
                             'optimizer')
        if moved:
            self.logger.info(f'LieRARunner: {moved} adapter parameter tensors train with '
                             f'{decay_mult} x the weight decay '
                             '(optim_wrapper.paramwise_cfg.adapter_decay_mult)')
        return built

    @master_only
    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        """mmengine's save, through a temporary file renamed when complete (local folders)."""
        if '://' in str(out_dir):  # remote backends write objects whole
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        with atomic_path(osp.join(out_dir, filename)) as tmp:
            super().save_checkpoint(osp.dirname(tmp), osp.basename(tmp), *args, **kwargs)

    def load_or_resume(self):
        """Auto-resume from the newest readable checkpoint (mmengine: the last one, readable
        or not)."""
        if self._resume and self._load_from is None and not self._has_loaded:
            if is_main_process():
                for name in remove_partial_files(self.work_dir):
                    self.logger.info(f'removed {name}, left by an interrupted save')
            path, bad = find_resume_checkpoint(self.work_dir)
            if path is not None:
                if bad:
                    self.logger.warning('--resume: ' + '; '.join(f'{p} cannot be read ({why})'
                                                                 for p, why in bad) +
                                        f'; resuming from {path}, the newest readable checkpoint')
                self.logger.info(f'Auto resumed from the latest readable checkpoint {path}.')
                self._load_from = path
        super().load_or_resume()

    def _inner_model(self):
        return self.model.module if is_model_wrapper(self.model) else self.model

    def load_checkpoint(self, *args, **kwargs):
        reports = contextlib.nullcontext() if self._resume else load_reports(self._inner_model())
        with mmengine_safe_globals(), reports:  # load_from: adapters start fresh, in one line
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, filename, *args, **kwargs):
        self.liera_resumed_from = filename
        with mmengine_safe_globals():
            return super().resume(filename, *args, **kwargs)

    def _init_model_weights(self):
        with mmengine_safe_globals(), load_reports(self._inner_model()):
            super()._init_model_weights()
        # W-derived adapter state (PiSSA factors, DoRA magnitudes) follows the initialised
        # weights; resume / load_from restore trained values afterwards.
        init_adapters_from_weights(self._inner_model())
