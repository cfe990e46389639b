"""Teachers for the capacity study's sensitivity check: labels that only a weight change of one
kind can reproduce exactly.

A teacher is the start backbone (the classification study's ConvNeXt-V2-atto) with every
Conv2d / Linear weight W perturbed by a random update in mmliera's own factor layout (A, B drawn
N(0, 1) from ``seed``; ΔW = reshape(B·A)·alpha/r as the adapters form it), each layer's update
scaled so that ‖W_T − W‖ / ‖W‖ = ``eps``:

* ``'multiplicative'``: W_T = W ⊙ (1 + ΔW), a point of LieRA Taylor's family at that rank;
* ``'additive'``:       W_T = W + ΔW, a point of LoRA's family at that rank.

Labels (:func:`quadrant_labels`, 4 classes): f_T and f_0 are the teacher's and the start
backbone's features (global average pool, final norm: 320-d), in float64. On the train split,
f_T ≈ [f_0, 1]·β by least squares leaves a residual R; u1, u2 are the two directions that
maximise Var(u·R) / (Var(u·f_T) + ridge), the directions of the teacher's features that a
linear map of the start features explains least (ridge = 0.1 × the mean variance of f_T, so
that directions of negligible variance do not win). The label of an image is
``2·[u1·f_T > m1] + [u2·f_T > m2]`` with m the train split's medians, the same for every split.
A student that reproduces the teacher exactly reaches 100 %; a linear probe on the start features
does not (the study reports how far it gets).
"""
import numpy as np
import torch
from mmpretrain.models.backbones import ConvNeXt

from mmliera.models.peft import adapter_layers, inject_adapters, merge_adapters
from .errors import TaskSettingError

KINDS = dict(multiplicative='taylor', additive='lora')  # perturbation -> the adapter mode
CLASSES = ('low-low', 'low-high', 'high-low', 'high-high')  # (u1·f_T, u2·f_T) vs the medians
RIDGE = 0.1
# the normalisation the start backbone was trained with (the study's data preprocessor)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def atto_backbone():
    """The classification study's backbone architecture (plain ConvNeXt-V2-atto), untrained."""
    return ConvNeXt(
        arch='atto',
        use_grn=True,
        layer_scale_init_value=0.,
        drop_path_rate=0.,
        gap_before_final_norm=True)


def start_backbone(checkpoint):
    """The classification study's start backbone (plain ConvNeXt-V2-atto), float64, eval."""
    model = atto_backbone()
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = state.get('state_dict', state)
    model.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    })
    model.double()
    model.eval()
    return model


def make_teacher(checkpoint, kind, rank, eps, seed):
    """The start backbone with each Conv2d / Linear weight perturbed (module docstring)."""
    if kind not in KINDS:
        raise TaskSettingError(f'kind must be one of {", ".join(KINDS)}, got {kind!r}')
    if not (isinstance(rank, int) and rank > 0 and eps > 0):
        raise TaskSettingError(f'rank must be a positive int and eps > 0, got {rank!r}, {eps!r}')
    model = start_backbone(checkpoint)
    inject_adapters(model, rank=rank, mode=KINDS[kind], check_zeros=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapter_layers(model).values():  # sorted names: a fixed draw order
            for factor in (layer.lora_A, layer.lora_B):
                factor.copy_(torch.randn(factor.shape, generator=gen, dtype=factor.dtype))
            change = (layer.merged_weight() - layer.weight).norm()
            layer.lora_B.mul_(eps * layer.weight.norm() / change)
    merge_adapters(model, keep_original=False)
    return model


def features(model, images, batch=250):
    """(N, 320) float64 features of ``images`` (N, H, W, 3) BGR uint8, as the student sees them
    (RGB, normalised; no augmentation)."""
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch, ..., ::-1]))
            x = (x.permute(0, 3, 1, 2).to(torch.float64) - mean) / std
            out.append(model(x)[-1])
    return torch.cat(out).numpy()


def label_directions(f_teacher, f_start):
    """(2, D) directions u1, u2 and the (2,) medians of the projections, from train features
    (N, D) with N > D + 1 (else the least squares leaves no residual)."""
    if len(f_start) <= f_start.shape[1] + 1:
        raise TaskSettingError(f'a teacher task needs more train images than the features have '
                               f'dimensions + 1 ({f_start.shape[1] + 1}), got {len(f_start)}: '
                               f'enlarge splits.train')
    x = np.c_[f_start, np.ones(len(f_start))]
    beta = np.linalg.lstsq(x, f_teacher, rcond=None)[0]
    resid = f_teacher - x @ beta
    cov_t = np.cov(f_teacher.T)
    cov_t += RIDGE * np.trace(cov_t) / len(cov_t) * np.eye(len(cov_t))
    whiten = np.linalg.inv(np.linalg.cholesky(cov_t))  # L⁻¹ with cov_t = L Lᵀ
    _, vecs = np.linalg.eigh(whiten @ np.cov(resid.T) @ whiten.T)
    dirs = (whiten.T @ vecs[:, ::-1][:, :2]).T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs *= np.sign(dirs[:, :1] + 1e-300)  # a fixed sign per direction
    return dirs, np.median(f_teacher @ dirs.T, axis=0)


def quadrant_labels(f_teacher, dirs, medians):
    """Class index 2·[u1·f > m1] + [u2·f > m2] per row of ``f_teacher``."""
    above = f_teacher @ dirs.T > medians
    return 2 * above[:, 0].astype(np.int64) + above[:, 1]
