"""ExactResumeHook: checkpoints carry the RNG state, so a resumed run continues exactly.

mmengine restores weights, optimizer, schedulers and the iteration count on resume, but not
the random number generators, so RPN / RoI sampling after a resume draws other numbers than an
uninterrupted run would. This hook stores the torch / numpy / python RNG states in the
checkpoint (``before_save_checkpoint``) and restores them on load (single-process runs; a
distributed resume warns and continues with fresh draws). LieRARunner installs it and
also gives data loaders a private generator, so re-creating their iterators (on resume, when
mmengine skips the batches already trained) draws nothing from the global RNG.
"""
import random
import warnings

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook


def get_rng_state():
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                 python=random.getstate())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save the RNG state in checkpoints; restore it on load (single process)."""

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint):
        # no collective here: mmengine may build the checkpoint on the main process only
        checkpoint['rng_state'] = dict(world_size=get_dist_info()[1], state=get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint):
        saved = checkpoint.get('rng_state')
        if not saved:
            return
        rank, world_size = get_dist_info()
        if saved['world_size'] != 1 or world_size != 1:
            if rank == 0:
                warnings.warn('RNG states are restored exactly for single-process runs only; '
                              'this distributed resume continues with fresh random draws')
            return
        set_rng_state(saved['state'])
