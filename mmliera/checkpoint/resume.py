"""Which checkpoint ``--resume`` continues from: the newest one that can be read.

mmengine resumes from the file named in ``work_dir/last_checkpoint`` and stops with torch's zip
error when that file is truncated (a kill during a non-atomic save of an older run, a disk that
filled up) or gone. :func:`find_resume_checkpoint` tries that file first, then the other
``iter_N.pth`` / ``epoch_N.pth`` files, most trained first, and returns the first that opens.
A file opens when torch can read its archive and unpickle its record (tensors memory-mapped,
not read), which a truncated file cannot.

"Most trained" is the iteration mmengine records in each checkpoint's ``meta`` (an epoch
checkpoint's too), so ``epoch_2.pth`` and ``iter_150.pth`` of runs by epoch and by iteration in
one folder compare by the iterations they hold, not by their numbers. A file that cannot be read
counts by its name: ``iter_N`` as N iterations, ``epoch_N`` as N epochs of the readable epoch
checkpoints' length (first, when there is none to measure by); ties go to the newer file.
"""
import os
import os.path as osp
import re
import shutil
import zipfile
from typing import List, Optional, Tuple

from ..utils.errors import UserError
from .atomic import is_partial
from .safe_load import safe_load

CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


class UnreadableCheckpointError(UserError, RuntimeError):
    """No checkpoint that ``--resume`` could continue from can be read."""


def checkpoint_problem(path: str) -> Optional[str]:
    """None when ``path`` is a readable mmengine checkpoint, else what is wrong with it."""
    if not osp.isfile(path):
        return 'no such file'
    if osp.getsize(path) == 0:
        return 'empty file'
    try:
        ckpt = safe_load(path, mmap=True)
    except Exception:
        try:  # mapping a damaged file fails with a bare OSError: torch's own reader says more
            ckpt = safe_load(path)
        except Exception as e:  # truncated zip, foreign pickle, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else ''
            error = f'{type(e).__name__}: {first}' if first else type(e).__name__
            if not zipfile.is_zipfile(path):  # torch writes zip archives since 1.6
                return f'truncated or not a torch file, no complete zip archive ({error})'
            return error
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'meta' not in ckpt:
        return 'not an mmengine checkpoint (no state_dict / meta)'
    return None


def _opened(path):
    """``(problem, iteration)``: :func:`checkpoint_problem` and, for a readable file, the
    iteration in its meta."""
    problem = checkpoint_problem(path)
    if problem is not None:
        return problem, None
    meta = safe_load(path, mmap=True).get('meta') or {}
    return None, meta.get('iter') if isinstance(meta.get('iter'), int) else None


def _candidates(work_dir, named):
    """``[(path, problem)]`` in the order :func:`find_resume_checkpoint` tries them."""
    folders = {osp.abspath(work_dir)} | ({osp.dirname(osp.abspath(named))} if named else set())
    found = []
    for folder in folders:
        for name in os.listdir(folder) if osp.isdir(folder) else ():
            m = CHECKPOINT_NAME.match(name)
            path = osp.join(folder, name)
            if m and not (named and osp.abspath(path) == osp.abspath(named)):
                found.append(
                    (m.group(1), int(m.group(2)), osp.getmtime(path), path, *_opened(path)))
    # iterations per epoch, measured on the readable epoch checkpoints
    lengths = [it / n for kind, n, _, _, _, it in found if kind == 'epoch' and n and it]
    per_epoch = max(lengths) if lengths else None

    def progress(entry):
        kind, n, mtime, _, _, it = entry
        if it is None:  # unreadable: count by the name
            it = n if kind == 'iter' else (n * per_epoch if per_epoch else float('inf'))
        return it, mtime

    ordered = [(path, problem)
               for *_, path, problem, _ in sorted(found, key=progress, reverse=True)]
    if named:
        ordered.insert(0, (named, checkpoint_problem(named)))
    return ordered


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path ``work_dir/last_checkpoint`` names (mmengine's pointer), or None."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        return f.read().strip() or None


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """``(path, bad)``: the checkpoint to resume from (None: the work dir holds none) and the
    ``(path, problem)`` pairs of newer ones that could not be read.

    Raises :class:`UnreadableCheckpointError` when checkpoints exist but none can be read."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = read_last_checkpoint(work_dir)
    bad = []
    if osp.isfile(pointer) and named is None:
        bad.append((pointer, 'empty file'))
    for path, problem in _candidates(work_dir, named):
        if problem is None:
            return path, bad
        bad.append((path, problem))
    if any(p != pointer for p, _ in bad):
        raise UnreadableCheckpointError(
            f'--resume: no checkpoint in {work_dir} can be read (' +
            '; '.join(f'{p}: {why}' for p, why in bad) + '); remove or replace the damaged '
            'files, pass --resume PATH to a good checkpoint, or train again without --resume')
    return None, bad


def remove_partial_files(folder):
    """Delete what interrupted atomic writes left in ``folder``; returns their names."""
    removed = []
    for name in os.listdir(folder) if osp.isdir(folder) else ():
        if is_partial(name):
            path = osp.join(folder, name)
            if osp.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(name)
    return removed
