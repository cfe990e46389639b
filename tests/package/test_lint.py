"""The tree passes OpenMMLab's linters with the settings of setup.cfg (as pre-commit runs them)."""
import subprocess
import sys

import pytest
from helpers import ROOT

PATHS = [
    'mmliera', 'tools', 'tests', 'conftest.py', 'setup.py', 'projects/liera_study/liera_study',
    'projects/liera_study/tests', 'projects/liera_study/tools'
]


@pytest.mark.parametrize('tool,args', [
    ('flake8', []),
    ('isort', ['--check-only', '--diff']),
    ('yapf', ['--diff', '-r']),
])
def test_linter_passes(tool, args):
    pytest.importorskip(tool)
    done = subprocess.run(
        [sys.executable, '-m', tool] + args + PATHS,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300)
    assert done.returncode == 0 and not done.stdout.strip(), (done.stdout + done.stderr)[-4000:]
