"""The registries mmliera's components live in: the same kind in every OpenMMLab codebase it
serves, mmdet's and mmpretrain's (children of mmengine's roots).

Each mmliera component is registered once, through a :class:`Registries` below, into mmdet's
and mmpretrain's registry of its kind, so configs with ``default_scope='mmdet'`` or
``default_scope='mmpretrain'`` and ``custom_imports=dict(imports=['mmliera'])`` find every
mmliera type by its plain name (no ``mmdet.`` prefix in a classification config). Building
and looking up go through the registry of the current default scope (mmdet's when none is
set), so ``type='LieRA', backbone=dict(type='ConvNeXt')`` resolves ``ConvNeXt`` where the
config lives. Runners are also put in mmengine's root RUNNERS: mmdet's, mmpretrain's (and
mmengine's) ``tools/train.py`` build ``runner_type`` from it before any default scope is set.
"""
from mmdet import registry as det
from mmengine import registry as root
from mmengine.registry import DefaultScope
from mmpretrain import registry as pretrain


class Registries:
    """One kind of registry (``MODELS``, ``HOOKS``, ...) in mmdet and mmpretrain.

    ``register_module`` registers in each of ``registries``; ``build``, ``get`` and ``in``
    use the one of the current default scope (the first, mmdet's, for another or no scope).
    """

    def __init__(self, *registries):
        self.registries = registries
        self.name = registries[0].name

    @property
    def current(self):
        """The registry of the current default scope (mmdet's when it is none of ours)."""
        scope = DefaultScope.get_current_instance()
        name = scope.scope_name if scope is not None else None
        return next((r for r in self.registries if r.scope == name), self.registries[0])

    def register_module(self, name=None, force=False, module=None):
        """As mmengine's ``Registry.register_module`` (a decorator without ``module``), in
        every registry of this kind."""

        def register(cls):
            for registry in self.registries:
                registry.register_module(name=name, force=force, module=cls)
            return cls

        return register if module is None else register(module)

    def build(self, cfg, *args, **kwargs):
        return self.current.build(cfg, *args, **kwargs)

    def get(self, key):
        return self.current.get(key)

    def __contains__(self, key):
        return key in self.current

    def __repr__(self):
        return f'Registries({self.name}: {", ".join(r.scope for r in self.registries)})'


MODELS = Registries(det.MODELS, pretrain.MODELS)
HOOKS = Registries(det.HOOKS, pretrain.HOOKS)
DATASETS = Registries(det.DATASETS, pretrain.DATASETS)
RUNNERS = Registries(det.RUNNERS, pretrain.RUNNERS, root.RUNNERS)


def register_runner(cls):
    """Class decorator: a runner in mmdet's, mmpretrain's and mmengine's root RUNNERS."""
    return RUNNERS.register_module(module=cls)


__all__ = ['Registries', 'DATASETS', 'HOOKS', 'MODELS', 'RUNNERS', 'register_runner']
