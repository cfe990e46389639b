"""The registries mmliera's components live in: mmdet's (children of mmengine's roots).

Configs with ``default_scope='mmdet'`` and ``custom_imports=dict(imports=['mmliera'])`` find
every mmliera type by its plain name. Runners are the exception that mmengine's root registry
must hold too: mmdet's (and mmengine's) ``tools/train.py`` build ``runner_type`` from
``mmengine.registry.RUNNERS`` before any default scope is set, so :func:`register_runner` puts a
runner in both.
"""
from mmdet.registry import DATASETS, HOOKS, MODELS, RUNNERS
from mmengine.registry import RUNNERS as ROOT_RUNNERS


def register_runner(cls):
    """Class decorator: register a runner in mmdet's RUNNERS and in mmengine's root RUNNERS."""
    RUNNERS.register_module(module=cls)
    ROOT_RUNNERS.register_module(module=cls)
    return cls


__all__ = ['DATASETS', 'HOOKS', 'MODELS', 'RUNNERS', 'register_runner']
