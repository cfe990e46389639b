"""Load mmengine checkpoints with torch's ``weights_only=True`` unpickler and a small allow-list.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; torch >= 2.6 defaults to True,
and the checkpoints mmengine writes then fail to load: their message hub holds
``HistoryBuffer`` objects (numpy arrays inside) whose statistic methods are pickled as
``getattr(buffer, 'mean')``. Rather than turning safety off for every file, we allow exactly the
types mmengine writes: HistoryBuffer, numpy arrays / dtypes / scalars, and a guarded ``getattr``
that only resolves a HistoryBuffer's registered statistic methods.
"""
import contextlib
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _guarded_getattr(obj, name, *default):
    """``getattr`` for unpickling: only HistoryBuffer's (class or instance) statistic methods."""
    if ((obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and isinstance(name, str)
            and name in BUILTIN_STATISTICS + tuple(HistoryBuffer._statistics_methods)
            and not default):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({type(obj).__name__}, {name!r}) while loading a checkpoint: only '
        'HistoryBuffer statistic methods are allowed')


def _numpy_globals():
    core = getattr(np, '_core', None) or np.core
    out = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    out += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    # numpy 1.x pickles record numpy.core.*, numpy 2.x numpy._core.*
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        out += [(core.multiarray._reconstruct, f'{mod}._reconstruct'),
                (core.multiarray.scalar, f'{mod}.scalar')]
    return out


SAFE_GLOBALS = [
    HistoryBuffer, (_guarded_getattr, 'builtins.getattr'), (_guarded_getattr, '__builtin__.getattr')
] + _numpy_globals()


def register_safe_globals():
    """Add :data:`SAFE_GLOBALS` to torch's weights-only allow-list for the whole process
    (``import mmliera`` does), so every loader (mmdet's ``init_detector``, ``DetInferencer``,
    mmengine's ``load_checkpoint``, plain ``torch.load``) reads mmengine checkpoints; nothing
    beyond this list becomes loadable. Returns False on a torch without the mechanism."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(SAFE_GLOBALS)
    return True


@contextlib.contextmanager
def mmengine_safe_globals():
    """Within this block, ``torch.load`` (weights_only) accepts what mmengine checkpoints hold.

    The allow-list is registered for the whole process (:func:`register_safe_globals`, which
    ``import mmliera`` calls); this block only makes sure of it. It does not use torch's own
    ``safe_globals`` context, whose exit removes the listed globals even when they had been
    registered before.
    """
    if not register_safe_globals():  # a torch without add_safe_globals: scoped fallback
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            yield
        return
    yield


def safe_load(path, map_location='cpu', mmap=False):
    """``torch.load(path, weights_only=True)`` with the mmengine allow-list.

    ``mmap=True``: tensors stay memory-mapped (a large checkpoint is not read into memory);
    files in torch's legacy (non-zip) format, which cannot be mapped, are read as usual.
    """
    with mmengine_safe_globals():
        if mmap:
            try:
                return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) format
                pass
        return torch.load(path, map_location=map_location, weights_only=True)
