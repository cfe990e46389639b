"""The registries mmliera's components live in: mmdet's (children of mmengine's roots).

Configs with ``default_scope='mmdet'`` and ``custom_imports=dict(imports=['mmliera'])`` find
every mmliera type by its plain name.
"""
from mmdet.registry import DATASETS, HOOKS, MODELS, RUNNERS

__all__ = ['DATASETS', 'HOOKS', 'MODELS', 'RUNNERS']
