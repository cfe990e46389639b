"""Which checkpoint ``--resume`` continues from: the newest one that can be read.

mmengine resumes from the file named in ``work_dir/last_checkpoint`` and stops with torch's zip
error when that file is truncated (a kill during a non-atomic save of an older run, a disk that
filled up) or gone. :func:`find_resume_checkpoint` tries that file first, then the other
``iter_N.pth`` / ``epoch_N.pth`` files, highest N first, and returns the first that opens.
A file opens when torch can read its archive and unpickle its record (tensors memory-mapped,
not read), which a truncated file cannot.
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


def _candidates(work_dir, named):
    folders = {osp.abspath(work_dir)} | ({osp.dirname(osp.abspath(named))} if named else set())
    found = []
    for folder in folders:
        for name in os.listdir(folder) if osp.isdir(folder) else ():
            m = CHECKPOINT_NAME.match(name)
            if m:
                path = osp.join(folder, name)
                found.append((int(m.group(2)), osp.getmtime(path), path))
    ordered = [p for _, _, p in sorted(found, reverse=True)]
    if named:
        ordered = [named] + [p for p in ordered if osp.abspath(p) != osp.abspath(named)]
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
    for path in _candidates(work_dir, named):
        problem = checkpoint_problem(path)
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
