"""Import-time environment checks: supported OpenMMLab versions and mmcv's compiled ops.

``check_environment()`` runs when ``mmliera`` is imported, before mmdet/mmpretrain are, and
raises :class:`EnvironmentMismatchError` with one sentence: what is wrong and the command that
fixes it.
"""
import importlib
import importlib.metadata
import importlib.util

from packaging.version import InvalidVersion, Version

from .errors import UserError

SETUP_COMMAND = 'bash tools/setup_env.sh'

# distribution -> (lowest supported, first unsupported, pip spec that fixes it)
SUPPORTED = {
    'mmengine': ('0.10.0', '1.0.0', 'mmengine==0.10.7'),
    'mmcv': ('2.0.0', '2.2.0', 'mmcv==2.1.0'),
    'mmdet': ('3.3.0', '3.4.0', 'mmdet==3.3.0'),
    'mmpretrain': ('1.2.0', '1.3.0', 'mmpretrain==1.2.0'),
}


class EnvironmentMismatchError(UserError, ImportError):
    """The installed stack cannot run mmliera; the message says how to fix it."""


def installed_version(dist):
    """Version string of an installed distribution, or None when it is absent."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def mmcv_ops_error():
    """None when mmcv's compiled ops (``mmcv._ext``) load, else the reason they do not."""
    try:
        ext = importlib.import_module('mmcv._ext')
    except Exception as e:  # ImportError, OSError (undefined symbol from another torch), ...
        return f'{type(e).__name__}: {e}'
    missing = [f for f in ('nms', 'roi_align_forward') if not hasattr(ext, f)]
    return f'mmcv._ext lacks {missing}' if missing else None


def mmcv_cuda_error():
    """None unless CUDA is available to torch but mmcv's ops were compiled without CUDA
    (RoIAlign, nms would then fail on the first GPU tensor); else the reason."""
    import torch
    if torch.version.cuda is None or not torch.cuda.is_available():
        return None
    ext = importlib.import_module('mmcv._ext')
    built = ext.get_compiling_cuda_version() if hasattr(ext, 'get_compiling_cuda_version') \
        else 'not available'
    if built == 'not available':
        return (f'CUDA {torch.version.cuda} is available to torch {torch.__version__} but '
                "mmcv's compiled ops were built without CUDA")
    return None


def check_environment():
    """Raise EnvironmentMismatchError unless versions are in range and mmcv has its ops."""
    for dist, (low, high, fix) in SUPPORTED.items():
        found = installed_version(dist)
        if found is None and dist == 'mmcv' and installed_version('mmcv-lite'):
            raise EnvironmentMismatchError(
                'mmliera needs mmcv with compiled ops (RoIAlign, nms) but mmcv-lite is '
                f'installed; run `pip uninstall -y mmcv-lite && {SETUP_COMMAND}`.')
        if found is None:
            raise EnvironmentMismatchError(
                f'mmliera needs {dist}>={low},<{high} but {dist} is not installed; '
                f'run `{SETUP_COMMAND}` (or `pip install {fix}`).')
        try:
            ok = Version(low) <= Version(found) < Version(high)
        except InvalidVersion:
            ok = False
        if not ok:
            raise EnvironmentMismatchError(
                f'mmliera supports {dist}>={low},<{high} but {dist} {found} is installed; '
                f'run `pip install {fix}` (or `{SETUP_COMMAND}`).')
    if importlib.util.find_spec('pkg_resources') is None:
        raise EnvironmentMismatchError(
            'mmengine needs pkg_resources (to resolve mmdet:: configs) but the installed '
            f"setuptools has none; run `pip install 'setuptools>=77.0.3,<81'` (or "
            f'`{SETUP_COMMAND}`).')
    reason = mmcv_ops_error()
    if reason is not None:
        raise EnvironmentMismatchError(
            'mmliera needs mmcv built with compiled ops (RoIAlign, nms) for the installed '
            f'torch, but they do not load ({reason}); run `{SETUP_COMMAND}` to install '
            'mmcv 2.1.0 with ops (GPU machines: `mim install "mmcv>=2.0.0,<2.2.0"`).')
    reason = mmcv_cuda_error()
    if reason is not None:
        raise EnvironmentMismatchError(
            f'{reason}, so RoIAlign and nms would fail on GPU tensors; run `{SETUP_COMMAND}` '
            '(it builds mmcv 2.1.0 with MMCV_WITH_OPS=1 FORCE_CUDA=1 against this torch), or '
            'set CUDA_VISIBLE_DEVICES= to run on the CPU.')


def environment_summary():
    """One line naming the versions in use, for logs."""
    import torch
    parts = [f'torch {torch.__version__}']
    parts += [f'{d} {installed_version(d)}' for d in SUPPORTED]
    parts.append('CUDA' if torch.cuda.is_available() else 'CPU')
    return ', '.join(parts)
