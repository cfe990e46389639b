"""Import-time environment checks (issue: installable mmliera)."""
import importlib
import os
import sys

import pytest

from mmliera.utils import environment as env


def test_current_environment_passes():
    from packaging.version import Version
    env.check_environment()
    summary = env.environment_summary()
    for dist, (low, high, _) in env.SUPPORTED.items():
        found = env.installed_version(dist)
        assert Version(low) <= Version(found) < Version(high), (dist, found)
        assert f'{dist} {found}' in summary


@pytest.mark.parametrize('version', ['3.3.0', '3.3.5', '3.3.99.post1'])
def test_any_version_in_range_is_accepted(monkeypatch, version):
    real = env.installed_version
    monkeypatch.setattr(env, 'installed_version', lambda d: version if d == 'mmdet' else real(d))
    env.check_environment()


@pytest.mark.parametrize('dist,bad', [('mmdet', '3.2.0'), ('mmdet', '3.4.1'), ('mmcv', '2.2.0'),
                                      ('mmcv', '1.7.2'), ('mmpretrain', '1.3.0'),
                                      ('mmengine', '1.0.0')])
def test_out_of_range_version_is_one_clear_sentence(monkeypatch, dist, bad):
    real = env.installed_version
    monkeypatch.setattr(env, 'installed_version', lambda d: bad if d == dist else real(d))
    with pytest.raises(env.EnvironmentMismatchError) as e:
        env.check_environment()
    msg = str(e.value)
    assert f'{dist} {bad} is installed' in msg
    assert 'pip install' in msg and env.SETUP_COMMAND in msg
    assert msg.count('\n') == 0


def test_missing_package(monkeypatch):
    real = env.installed_version
    monkeypatch.setattr(env, 'installed_version', lambda d: None if d == 'mmpretrain' else real(d))
    with pytest.raises(env.EnvironmentMismatchError, match='mmpretrain is not installed'):
        env.check_environment()


def test_mmcv_lite_is_refused(monkeypatch):
    real = env.installed_version
    fake = {'mmcv': None, 'mmcv-lite': '2.1.0'}
    monkeypatch.setattr(env, 'installed_version', lambda d: fake[d] if d in fake else real(d))
    with pytest.raises(env.EnvironmentMismatchError, match='mmcv-lite is installed'):
        env.check_environment()


def test_missing_compiled_ops(monkeypatch):
    real_import = importlib.import_module

    def no_ext(name, *a, **k):
        if name == 'mmcv._ext':
            raise ModuleNotFoundError("No module named 'mmcv._ext'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(env.importlib, 'import_module', no_ext)
    with pytest.raises(env.EnvironmentMismatchError) as e:
        env.check_environment()
    assert 'compiled ops' in str(e.value) and "No module named 'mmcv._ext'" in str(e.value)
    assert env.SETUP_COMMAND in str(e.value)


def test_real_ops_load():
    assert env.mmcv_ops_error() is None


def assert_fresh_import_raises(monkeypatch, match):
    """A fresh ``import mmliera`` (its modules dropped, the patched environment check kept)
    raises the check's error; the modules are restored afterwards."""
    import sys
    saved = {k: v for k, v in sys.modules.items() if k == 'mmliera' or k.startswith('mmliera.')}
    for k in saved:
        if k != 'mmliera.utils.environment':
            monkeypatch.delitem(sys.modules, k)
    try:
        with pytest.raises(env.EnvironmentMismatchError, match=match):
            importlib.import_module('mmliera')
    finally:
        sys.modules.update(saved)


def test_import_mmliera_raises_the_check(monkeypatch):
    """A fresh ``import mmliera`` fails with the message when the stack is wrong."""
    real = env.installed_version
    monkeypatch.setattr(env, 'installed_version', lambda d: '3.1.0' if d == 'mmdet' else real(d))
    assert_fresh_import_raises(monkeypatch, 'mmdet 3.1.0 is installed')


def test_missing_pkg_resources(monkeypatch):
    real = env.importlib.util.find_spec
    monkeypatch.setattr(env.importlib.util, 'find_spec', lambda n, *a: None
                        if n == 'pkg_resources' else real(n, *a))
    with pytest.raises(env.EnvironmentMismatchError, match="setuptools>=77.0.3,<81"):
        env.check_environment()


class _Ext:
    """mmcv._ext as built with ``cuda`` ('not available': without CUDA); the rest is real."""

    def __init__(self, cuda):
        self.cuda = cuda

    def get_compiling_cuda_version(self):
        return self.cuda

    def __getattr__(self, name):
        import mmcv._ext
        return getattr(mmcv._ext, name)


def _fake_machine(monkeypatch, gpu, torch_cuda, mmcv_cuda):
    """A machine where torch sees a GPU (or not) and mmcv's ops were built with ``mmcv_cuda``
    ('not available': without CUDA)."""
    import torch
    real_import = importlib.import_module
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    monkeypatch.setattr(torch.version, 'cuda', torch_cuda)
    monkeypatch.setattr(
        env.importlib, 'import_module', lambda n, *a, **k: _Ext(mmcv_cuda)
        if n == 'mmcv._ext' else real_import(n, *a, **k))


def test_cuda_machine_with_cpu_only_mmcv_ops_is_one_sentence(monkeypatch):
    _fake_machine(monkeypatch, gpu=True, torch_cuda='13.0', mmcv_cuda='not available')
    with pytest.raises(env.EnvironmentMismatchError) as e:
        env.check_environment()
    msg = str(e.value)
    assert msg.startswith('CUDA 13.0 is available to torch ') and msg.count('\n') == 0
    assert "mmcv's compiled ops were built without CUDA" in msg and 'RoIAlign' in msg
    assert env.SETUP_COMMAND in msg and 'FORCE_CUDA=1' in msg
    assert 'CUDA_VISIBLE_DEVICES=' in msg


def test_import_mmliera_on_a_cuda_machine_with_cpu_only_ops_raises(monkeypatch):
    _fake_machine(monkeypatch, gpu=True, torch_cuda='12.1', mmcv_cuda='not available')
    assert_fresh_import_raises(monkeypatch, 'built without CUDA')


@pytest.mark.parametrize(
    'gpu,torch_cuda,mmcv_cuda',
    [
        (True, '13.0', '13.0'),  # a CUDA build of mmcv on a GPU machine
        (False, '13.0', 'not available'),  # CUDA torch, no GPU (this CPU machine): CPU ops are fine
        (True, None, 'not available'),  # a CPU / ROCm torch: not our check's business
    ])
def test_cuda_ops_check_passes_where_ops_fit(monkeypatch, gpu, torch_cuda, mmcv_cuda):
    _fake_machine(monkeypatch, gpu, torch_cuda, mmcv_cuda)
    assert env.mmcv_cuda_error() is None
    env.check_environment()


_CUDA_VISIBLE_AT_IMPORT = os.environ.get('CUDA_VISIBLE_DEVICES')


def test_tools_started_by_a_test_see_no_gpu():
    """conftest.py: a test that is not marked ``cuda`` means the CPU, whatever the machine."""
    import subprocess
    out = subprocess.run([
        sys.executable, '-c', 'import os, torch; '
        'print(repr(os.environ["CUDA_VISIBLE_DEVICES"]), torch.cuda.is_available())'
    ],
                         capture_output=True,
                         text=True,
                         timeout=120).stdout.strip()
    assert out == "'' False"


@pytest.mark.cuda
def test_cuda_tests_see_the_machine_as_it_is():
    assert os.environ.get('CUDA_VISIBLE_DEVICES') == _CUDA_VISIBLE_AT_IMPORT
