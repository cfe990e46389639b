"""LieRAFreezeHook: enforce and verify the freezing policy; log the parameter table."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...models.freeze_policy import FreezePolicy
from ...models.param_report import format_table, parameter_table
from ...registry import HOOKS


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

    def _check_ddp_count(self, ddp, model):
        """Without LieRARunner's record, compare DDP's registered tensor count to now."""
        try:
            registered = ddp._get_ddp_logging_data()['num_parameter_tensors']
        except Exception:  # not a torch DDP, or no logging data: nothing to compare
            return
        now = sum(p.requires_grad for p in model.parameters())
        if registered != now:
            frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
            frozen.sort(key=self.policy.in_adapted)  # neck/head names first: likely culprits
            raise RuntimeError(
                f'LieRAFreezeHook: DDP registered {registered} parameter tensors for gradient '
                f'reduction but {now} require grad now: requires_grad was changed after the '
                f'wrap (frozen now: {", ".join(frozen[:8])}{", ..." if len(frozen) > 8 else ""}'
                "). Set runner_type='LieRARunner' in the config (tools/train.py does it) so "
                'the policy is applied before DDP wraps the model.')

    def before_train(self, runner):
        wrapped = is_model_wrapper(runner.model)
        model = runner.model.module if wrapped else runner.model
        self.policy.check_patterns(model)
        wanted = self.policy.resolve(model)
        ddp_seen = getattr(runner, 'liera_wrapped_trainable', None) if wrapped else None
        if wrapped and ddp_seen is None:
            self._check_ddp_count(runner.model, model)
        opt_ids = optimizer_params(getattr(runner, 'optim_wrapper', None))
        problems = {}  # reason -> parameter names

        def flag(cond, reason, name):
            if cond:
                problems.setdefault(reason, []).append(name)

        for n, p in model.named_parameters():
            if wanted[n]:
                flag(not p.requires_grad, 'policy trains, requires_grad=False', n)
                flag(ddp_seen is not None and n not in ddp_seen,
                     'policy trains, DDP does not reduce its grads', n)
                flag(
                    opt_ids is not None and id(p) not in opt_ids,
                    'policy trains, the optimizer does not hold it', n)
            else:
                flag(p.requires_grad, 'policy freezes, requires_grad=True', n)
                flag(ddp_seen is not None and n in ddp_seen,
                     'policy freezes, DDP registered it for grads', n)
                flag(
                    opt_ids is not None and id(p) in opt_ids,
                    'policy freezes, the optimizer holds it', n)
        if problems:
            lines = [
                f'{reason} ({len(names)}): {", ".join(names[:8])}' +
                (', ...' if len(names) > 8 else '') for reason, names in problems.items()
            ]
            raise RuntimeError(
                'LieRAFreezeHook: parameters disagree with the freezing policy after the model '
                'was wrapped and the optimizer built:\n  ' + '\n  '.join(lines) + '\n'
                "Set runner_type='LieRARunner' in the config (tools/train.py does it) so the "
                'policy is applied before DDP and the optimizer see the model, and do not '
                'change requires_grad after the runner is built.')
        runner.logger.info('LieRA freezing policy in force; parameters per module:\n' +
                           format_table(parameter_table(model)))


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
