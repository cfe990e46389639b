"""Every config of the study (projects/liera_study/configs/) loads and builds its model (no
data, no checkpoint download), as tests/models/test_configs.py checks configs/."""
import glob
import os

import pytest
from helpers import ROOT, STUDY_CONFIGS, check_config_builds

CONFIGS = sorted(glob.glob(os.path.join(STUDY_CONFIGS, '**', '*.py'), recursive=True))


def test_the_study_has_its_configs():
    names = {os.path.relpath(p, STUDY_CONFIGS) for p in CONFIGS}
    assert {'transfer/lora.py', 'transfer/whole_liera.py', 'transfer_cls/liera_r8.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    check_config_builds(path)
