"""Test-only hook: each rank saves its parameters at the start and the end of training."""
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class ParamProbeHook(Hook):
    priority = 'LOWEST'

    def _save(self, runner, tag):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = {n: p.detach().clone() for n, p in model.named_parameters()}
        state['__requires_grad__'] = [n for n, p in model.named_parameters() if p.requires_grad]
        state['__wrapped__'] = type(runner.model).__name__
        torch.save(state, osp.join(runner.work_dir, f'probe_{tag}_rank{get_rank()}.pth'))

    def before_train(self, runner):
        self._save(runner, 'start')

    def after_train(self, runner):
        self._save(runner, 'end')
