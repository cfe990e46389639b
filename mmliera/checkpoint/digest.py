"""weights_sha256: a checksum of a checkpoint's tensors, independent of how the file was written.

The file's own bytes change with its metadata (paths, times, mmengine's ``meta``); the weights'
checksum hashes, per ``state_dict`` key in sorted order, the key, dtype, shape and the tensor's
bytes. Two checkpoints with equal weights have equal checksums, whatever else they hold.
"""
import hashlib

import torch

from .safe_load import safe_load


def state_dict_sha256(state_dict) -> str:
    """Hex sha256 of ``{key: tensor}`` (non-tensor values are ignored)."""
    h = hashlib.sha256()
    for key in sorted(k for k, v in state_dict.items() if isinstance(v, torch.Tensor)):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f'{key}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()


def tensor_digests(state_dict) -> dict:
    """{key: 'dtype|shape|sha256 of the bytes'} of every tensor of ``state_dict``."""
    out = {}
    for key, v in state_dict.items():
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b''
            out[key] = f'{t.dtype}|{tuple(t.shape)}|{hashlib.sha256(data).hexdigest()}'
    return out


def combine_digests(digests) -> str:
    """One hex sha256 of :func:`tensor_digests` entries (sorted by key): equal for equal
    tensors, so a subset's checksum needs no second pass over the data."""
    h = hashlib.sha256()
    for key in sorted(digests):
        h.update(f'{key}|{digests[key]}\n'.encode())
    return h.hexdigest()


def weights_sha256(path) -> str:
    """sha256 of the weights (``state_dict``, or the whole dict of tensors) saved at ``path``."""
    ckpt = safe_load(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    return state_dict_sha256(state)
