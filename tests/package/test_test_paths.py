"""The test tree puts only tests/support/ on the import path (conftest.py, tests' subprocesses):
no test folder shadows an installed or optional package, e.g. tests/peft/ and Hugging Face's
``peft``, which tools/analysis_tools/benchmark.py probes with ``find_spec``."""
import importlib.util
import os
import sys

from helpers import ROOT, run

TEST_FOLDERS = sorted(
    d for d in os.listdir(os.path.join(ROOT, 'tests'))
    if os.path.isdir(os.path.join(ROOT, 'tests', d)) and not d.startswith(('.', '_')))


def _shadowed(names):
    """The names among ``names`` that resolve to a folder of the checkout's tests/."""
    tests = os.path.join(ROOT, 'tests') + os.sep
    out = []
    for name in names:
        spec = importlib.util.find_spec(name)
        places = list(spec.submodule_search_locations or []) if spec else []
        if spec and (spec.origin or '').startswith(tests) or any(
                p.startswith(tests) for p in places):
            out.append(name)
    return out


def test_no_test_folder_is_importable_in_this_process():
    assert 'peft' in TEST_FOLDERS and 'support' in TEST_FOLDERS
    assert os.path.join(ROOT, 'tests') not in sys.path
    assert _shadowed(TEST_FOLDERS) == []


def test_no_test_folder_is_importable_in_the_tests_subprocesses():
    code = ('import importlib.util as u; '
            f'print([n for n in {TEST_FOLDERS!r} if (s := u.find_spec(n)) is not None '
            'and any(p.startswith(' + repr(os.path.join(ROOT, 'tests') + os.sep) +
            ') for p in (s.submodule_search_locations or [s.origin or ""]))])')
    assert run(['python', '-c', code]).strip().splitlines()[-1] == '[]'
