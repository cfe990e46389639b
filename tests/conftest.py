import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

import mmliera  # noqa: E402,F401  (registers everything)


@pytest.fixture(autouse=True)
def _mmdet_scope():
    from mmengine.registry import DefaultScope, init_default_scope
    init_default_scope('mmdet')
    yield
    DefaultScope._instance_dict.clear()
