"""Frozen batch norms keep their statistics: a frozen BN runs in eval mode, even in training.

A detector adapted whole freezes the norm layers of its neck and heads with everything else
(GN and LN have no statistics; a BN/SyncBN would still update its running mean and variance in
training mode). :func:`keep_frozen_norms_in_eval` registers a forward pre-hook on every batch
norm of a module: while none of the norm's parameters requires grad, it runs with
``training=False`` (the statistics of the checkpoint, as mmdet's ``norm_eval=True`` does for
backbones). A norm made trainable by a pattern trains as usual (its statistics update).
"""
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def _eval_while_frozen(module, args):
    if module.training and not any(p.requires_grad for p in module.parameters()):
        module.training = False


def keep_frozen_norms_in_eval(module: nn.Module) -> int:
    """Register the hook on every batch norm of ``module``; returns how many."""
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        if not getattr(m, '_liera_eval_while_frozen', False):
            m.register_forward_pre_hook(_eval_while_frozen)
            m._liera_eval_while_frozen = True
    return len(norms)
