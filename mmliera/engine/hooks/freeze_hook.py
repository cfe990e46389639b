"""LieRAFreezeHook: enforce and verify the freezing policy; log the parameter table."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...freeze import FreezePolicy, format_table, parameter_table


def optimizer_params(optim_wrapper):
    """ids of every parameter held by an OptimWrapper / OptimWrapperDict, or None."""
    if optim_wrapper is None or isinstance(optim_wrapper, dict):
        return None
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    wrappers = wrappers.values() if wrappers is not None else [optim_wrapper]
    return {id(p) for w in wrappers for g in w.optimizer.param_groups for p in g['params']}


@HOOKS.register_module()
class LieRAFreezeHook(Hook):
    """Train only adapter factors in ``adapted_modules`` (default: the backbone) plus the rest.

    Args:
        adapted_modules (tuple[str]): top-level modules frozen except their LieRA factors.
        trainable (list[str]): parameter-name regexes that train anyway (e.g. ``'bias'``).
        frozen (list[str]): parameter-name regexes that are frozen anyway (win over trainable).

    The policy must be in force before DDP wraps the model and the optimizer is built: with
    ``runner_type='LieRARunner'`` it is (the runner applies it in ``wrap_model``). At
    ``before_train`` the hook checks that requires_grad, the DDP reducer and the optimizer all
    agree with the policy and raises, naming the parameters, when they do not; then it logs
    trainable / frozen / adapter counts per top-level module.
    """

    priority = 'VERY_HIGH'

    def __init__(self, adapted_modules=('backbone', ), trainable=(), frozen=()):
        self.policy = FreezePolicy(adapted_modules, trainable, frozen)

    def before_train(self, runner):
        wrapped = is_model_wrapper(runner.model)
        model = runner.model.module if wrapped else runner.model
        self.policy.check_patterns(model)
        wanted = self.policy.resolve(model)
        ddp_seen = None
        if wrapped:
            ddp_seen = getattr(runner, 'liera_wrapped_trainable', None)
            if ddp_seen is None:
                ddp_seen = {n for n, p in model.named_parameters() if p.requires_grad}
        opt_ids = optimizer_params(getattr(runner, 'optim_wrapper', None))
        problems = []
        for n, p in model.named_parameters():
            if wanted[n]:
                if not p.requires_grad:
                    problems.append(f'{n}: policy trains it but requires_grad=False')
                if ddp_seen is not None and n not in ddp_seen:
                    problems.append(f'{n}: policy trains it but DDP does not reduce its grads')
                if opt_ids is not None and id(p) not in opt_ids:
                    problems.append(f'{n}: policy trains it but the optimizer does not hold it')
            else:
                if p.requires_grad:
                    problems.append(f'{n}: policy freezes it but requires_grad=True')
                if ddp_seen is not None and n in ddp_seen:
                    problems.append(f'{n}: policy freezes it but DDP registered it for grads')
                if opt_ids is not None and id(p) in opt_ids:
                    problems.append(f'{n}: policy freezes it but the optimizer holds it')
        if problems:
            shown = '\n  '.join(problems[:20])
            more = f'\n  ... and {len(problems) - 20} more' if len(problems) > 20 else ''
            raise RuntimeError(
                f'LieRAFreezeHook: {len(problems)} parameter(s) disagree with the freezing '
                f'policy after the model was wrapped and the optimizer built:\n  {shown}{more}\n'
                "Set runner_type='LieRARunner' in the config (tools/train.py does it) so the "
                'policy is applied before DDP and the optimizer see the model, and do not '
                'change requires_grad after the runner is built.')
        runner.logger.info('LieRA freezing policy in force; parameters per module:\n' +
                           format_table(parameter_table(model)))
