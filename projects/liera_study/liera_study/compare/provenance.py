"""What a study's ``meta`` says about where and with what it ran: the commit, the machine, the
device, the time."""
import datetime
import os
import os.path as osp
import platform
import subprocess


def git_commit():
    """The checkout's commit (``+uncommitted`` when tracked files changed), or None."""
    try:
        here = osp.dirname(osp.abspath(__file__))
        out = subprocess.run(['git', 'rev-parse', 'HEAD'],
                             cwd=here,
                             capture_output=True,
                             text=True,
                             timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=here,
                               capture_output=True,
                               text=True,
                               timeout=10).stdout
        return out.stdout.strip() + ('+uncommitted' if dirty.strip() else '') \
            if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def device():
    """What the runs train on: 'cuda: NAME' or 'cpu: N cores'."""
    import torch
    if torch.cuda.is_available():
        return f'cuda: {torch.cuda.get_device_name(0)}'
    return f'cpu: {platform.machine()}, {os.cpu_count()} cores'


def machine():
    return f'{platform.machine()}, {os.cpu_count()} cores, {platform.system()}'


def now():
    return datetime.datetime.now().isoformat(timespec='seconds')
