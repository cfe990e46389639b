"""Atomic file writes: write a temporary file beside the target, flush it to disk, rename it over.

A process killed (or a disk that fills up) while writing leaves at most a hidden
``.{name}.tmp-{pid}`` file; the target keeps its previous content or stays absent, so a reader
never sees a truncated file under the final name. ``os.replace`` is atomic within one file
system on POSIX and Windows.
"""
import contextlib
import os
import os.path as osp
import re

PARTIAL = re.compile(r'^\..+\.tmp-\d+$')


def _umask():
    """The process's umask, read without changing it (Linux: /proc; else set and restore)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in ``path``'s folder; when the block ends without an error it is
    synced and renamed to ``path``, otherwise removed (``path`` untouched)."""
    folder, name = osp.split(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{name}.tmp-{os.getpid()}')
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        # the permissions of a file opened for writing (some writers, e.g. safetensors, make
        # their files readable by the owner only)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """``path`` holds ``text`` entirely, or (after a failure) its previous content."""
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write(text)


def is_partial(name):
    """Whether a file name is a leftover of an interrupted :func:`atomic_path` write."""
    return bool(PARTIAL.match(osp.basename(name)))
