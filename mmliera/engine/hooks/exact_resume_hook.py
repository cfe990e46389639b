"""ExactResumeHook: checkpoints carry every rank's RNG state, so a resumed run continues exactly.

mmengine restores weights, optimizer, schedulers and the iteration count on resume, but not
the random number generators, so RPN / RoI sampling after a resume draws other numbers than an
uninterrupted run would. This hook stores torch / numpy / python RNG states of every rank in the
checkpoint (``before_save_checkpoint``) and restores them on load. LieRARunner installs it and
also gives data loaders a private generator, so re-creating their iterators (on resume, when
mmengine skips the batches already trained) draws nothing from the global RNG.
"""
import random
import warnings

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object, get_dist_info
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
    """Save every rank's RNG state in checkpoints; restore this rank's on load."""

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint):
        _, world_size = get_dist_info()
        state = get_rng_state()
        checkpoint['rng_state'] = all_gather_object(state) if world_size > 1 else [state]

    def after_load_checkpoint(self, runner, checkpoint):
        states = checkpoint.get('rng_state')
        if not states:
            return
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            warnings.warn(f'checkpoint holds RNG states of {len(states)} ranks, this run has '
                          f'{world_size}: random draws will not match the original run')
            return
        set_rng_state(states[rank])
