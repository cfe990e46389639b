"""LieRA adapter layers: nn.Conv2d / nn.Linear subclasses carrying the factors ``lora_A`` and
``lora_B``.

``weight`` and ``bias`` keep their names and tensors (a plain layer's state_dict loads with only
``lora_A`` / ``lora_B`` missing). Shapes, with r the rank and s = alpha / r (alpha: 2·r):

    Linear W (out, in):                 A (r, in),          B (out, r)
    Conv2d W (C_out, C_in/g, kh, kw):   A (r·kh, C_in·kw),  B (C_out/g·kh, r·kh)

Forward, dropout 0 or eval: ``op(x, W')`` (one conv / linear with the rebuilt weight);
dropout p > 0 in training: ``op(x, W) + op(dropout(x), W' − W)``; merged: ``op(x, weight)``.

(About 330 lines, one concept: the mixin that holds the adapter state and math, and its two thin
subclasses, which only supply factor shapes and the op; split apart they would be read together.)
"""
import copy
import hashlib
import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import LAYER_KEYS, AdapterConfig, AdapterConfigError
from .formulas import (apply_dora, channel_norm, compute_dtype, delta_weight, revert_update,
                       update_only, updated_weight)
from .lean_op import lie_op
from .names import ADAPTER_PARAMS, is_adapter_factor, is_adapter_key  # noqa: F401


class _MergedGuard(torch.autograd.Function):
    """Identity in forward; backward raises: a merged layer cannot train its factors."""

    @staticmethod
    def forward(ctx, out, lora_A, lora_B, name):
        ctx.name = name
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(
            f'{ctx.name}: backward through a merged LieRA layer cannot train its adapter '
            'factors; call unmerge() (or mmliera.unmerge_adapters(model)) before training, '
            'or freeze the factors / run under torch.no_grad() for inference.')


def adapter_generator(name, device='cpu'):
    """The private generator a named layer's factor init draws from, or None without a name.

    Seeded from ``torch.initial_seed()`` (the run's seed once mmengine / ``torch.manual_seed``
    set it) and the layer's name, and never touching the global generator: with one seed, an
    adapted model and a plain one get the same neck and heads, and each layer's factors do not
    depend on which other layers are adapted.
    """
    device = torch.device(device)
    if not name or device.type == 'meta':
        return None
    digest = hashlib.sha256(f'{torch.initial_seed()}/{name}'.encode()).digest()
    return torch.Generator(device).manual_seed(int.from_bytes(digest[:8], 'little') >> 1)


class LieRALayer:
    """Adapter state and merge logic shared by LieRAConv2d and LieRALinear (a mixin).

    ``lean_backward`` (default True): when only the factors train, the forward runs one op with
    W' and backward rebuilds W' instead of keeping it alive (see :mod:`.lean_op`).
    """

    lean_backward = True

    def _init_adapter(self, name=None, check_zeros=True, **options):
        """Add the factors for ``options`` (:class:`~.config.AdapterConfig` settings; rank is
        required, the rest default there)."""
        self.adapter_name = name or type(self).__name__
        if 'rank' not in options:
            raise AdapterConfigError(f'{self.adapter_name}: rank is required')
        cfg = AdapterConfig(**options).check(self.adapter_name)
        self._check_shape()
        opts = cfg.layer_options()
        self.rank, self.alpha, self.mode = opts['rank'], opts['alpha'], opts['mode']
        self.scaling = self.alpha / self.rank
        self.dropout = opts['dropout']
        a_shape, b_shape = self.factor_shapes(self.rank)
        kw = dict(device=self.weight.device, dtype=self.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(a_shape, **kw))
        self.lora_B = nn.Parameter(torch.zeros(b_shape, **kw))
        # DoRA: learnable magnitude per output channel; PiSSA: frozen initial factors
        self.lora_magnitude = nn.Parameter(torch.ones(self.out_features_, **kw)) \
            if cfg.dora else None
        pissa = cfg.init == 'pissa'
        self.register_buffer('lora_A0', torch.zeros(a_shape, **kw) if pissa else None)
        self.register_buffer('lora_B0', torch.zeros(b_shape, **kw) if pissa else None)
        self.merged = False
        self.register_buffer('_unmerged_weight', None, persistent=False)
        self.reset_adapter(adapter_generator(name, self.weight.device))
        if check_zeros:
            self.warn_exact_zeros()

    @property
    def dora(self):
        """DoRA's magnitude is there (``lora_magnitude``)."""
        return self.lora_magnitude is not None

    @property
    def init(self):
        """'pissa' when PiSSA's initial factors are kept (``lora_A0``), else 'default'."""
        return 'default' if self.lora_A0 is None else 'pissa'

    def exact_zeros(self):
        """Number of exact zeros in W that the mode cannot move (0 for 'lora')."""
        return 0 if self.mode == 'lora' else int((self.weight == 0).sum())

    def warn_exact_zeros(self):
        """Warn (with the count) when W has exact zeros a multiplicative update cannot move."""
        zeros = self.exact_zeros()
        if zeros:
            warnings.warn(
                f'{self.adapter_name}: {zeros} of {self.weight.numel()} weights are exactly 0; '
                f'a multiplicative LieRA update ({self.mode}) cannot move them (mode="lora" can).')
        return zeros

    @classmethod
    def from_module(cls, layer, name=None, check_zeros=True, **options):
        """Adapted copy of ``layer`` sharing its weight and bias tensors (nothing is copied)."""
        where = name or type(layer).__name__
        if isinstance(layer, LieRALayer):
            raise ValueError(f'{where}: already has a LieRA adapter; inject adapters only once')
        if not isinstance(layer, cls.base_type):
            raise TypeError(f'{where}: {cls.__name__} adapts {cls.base_type.__name__}, '
                            f'got {type(layer).__name__}')
        new = cls.__new__(cls)
        new.__dict__.update({
            k: copy.copy(v) if isinstance(v, dict) else v
            for k, v in layer.__dict__.items()
        })
        new._init_adapter(name, check_zeros, **options)
        return new

    def reset_adapter(self, generator=None):
        """Factors so that the layer equals the plain layer: ΔW = 0 (and DoRA's m = ‖W‖).

        default: A kaiming-uniform (a = sqrt(5)) drawn from ``generator`` (None: the global
        one; layers built with a name draw from :func:`adapter_generator`), B zeros.
        pissa: s·B A = the top-k SVD part of W in the factors' matrix layout (k = A's rows;
        Linear W, Conv W viewed as (C_out/g·kh, C_in·kw)), split as B = U√S/√s, A = √S Vᵀ/√s;
        directions beyond W's rank get the default init. A0, B0 keep copies, and
        ΔW = s·(B A − B0 A0) is zero at init: the update lives in the Lie algebra, so
        W' = W ⊙ (1 + ΔW) starts at W exactly while the factors start on W's principal
        subspace. (The naive PiSSA combination, a residual W − BA as the base with W ⊙ ΔW on
        top, does not start at W.)
        """
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
            nn.init.zeros_(self.lora_B)
        self.init_from_weight()

    @torch.no_grad()
    def init_from_weight(self):
        """Re-derive what depends on W (PiSSA factors, DoRA magnitude), e.g. after W was loaded.

        Nothing else is touched: default-init factors keep their values.
        """
        ct = compute_dtype(self.weight.dtype)
        if self.init == 'pissa':
            m = self.weight.detach().to(ct).reshape(self.lora_B.shape[0], self.lora_A.shape[1])
            u, sv, vh = torch.linalg.svd(m, full_matrices=False)
            k = min(self.lora_A.shape[0], sv.numel())
            root = (sv[:k] / self.scaling).sqrt()
            self.lora_B[:, :k] = (u[:, :k] * root).to(self.lora_B.dtype)
            self.lora_A[:k] = (root[:, None] * vh[:k]).to(self.lora_A.dtype)
            self.lora_A0.copy_(self.lora_A)
            self.lora_B0.copy_(self.lora_B)
        if self.dora:
            self.lora_magnitude.copy_(channel_norm(self.weight.detach().to(ct)).view(-1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # a plain checkpoint (weight, no factors) was loaded: W-derived state follows it
        if prefix + 'weight' in state_dict and prefix + 'lora_A' not in state_dict:
            self.init_from_weight()

    def _delta(self):
        return delta_weight(self.lora_A, self.lora_B, self.scaling, self.weight.shape,
                            self.weight.dtype, self.lora_A0, self.lora_B0)

    def delta_weight(self):
        """ΔW = s · (B @ A).view(W.shape), in ``compute_dtype(W.dtype)`` (>= float32)."""
        return self._delta()

    def merged_weight(self):
        """W' for the layer's mode, in W's dtype (differentiable in A and B; merged: weight)."""
        if self.merged:
            return self.weight
        fresh = not torch.is_grad_enabled() or not any(
            t.requires_grad for t in (self.weight, self.lora_A, self.lora_B))
        w = updated_weight(
            self.weight,
            self.lora_A,
            self.lora_B,
            self.scaling,
            self.mode,
            self.lora_A0,
            self.lora_B0,
            inplace=fresh)
        return apply_dora(w, self.lora_magnitude, self.weight.dtype) if self.dora else w

    def merge(self, keep_original=True):
        """Fold W' into ``weight``. ``keep_original`` (default): the original W is kept for a
        bit-exact ``unmerge()`` (a second copy of W); False: W' is written into W's own memory
        and ``unmerge()`` recomputes W from W' and ΔW (:func:`~.formulas.revert_update`: exact
        up to rounding; not with DoRA, whose normalisation cannot be undone)."""
        if self.merged:
            warnings.warn(f'{self.adapter_name}: already merged; nothing to do')
            return
        if not keep_original and self.dora:
            raise ValueError(
                f'{self.adapter_name}: a merge without a copy of W cannot be undone with DoRA '
                '(its per-channel normalisation is not invertible); merge with '
                'keep_original=True')
        with torch.no_grad():
            new = self.merged_weight()
            if not torch.isfinite(new).all():
                raise ValueError(
                    f'{self.adapter_name}: merged weight has non-finite values '
                    f'({int((~torch.isfinite(new)).sum())} of {new.numel()}); the adapter '
                    'factors have diverged. Nothing was changed.')
            if keep_original:
                self._unmerged_weight = self.weight.data
                self.weight.data = new
            else:
                self.weight.data.copy_(new)
        self.merged = 'copy' if keep_original else 'inplace'

    def unmerge(self):
        """Restore the original W: bit-exactly after ``merge()``, up to rounding after
        ``merge(keep_original=False)``."""
        if not self.merged:
            warnings.warn(f'{self.adapter_name}: not merged; nothing to do')
            return
        if self.merged == 'inplace':
            with torch.no_grad():
                delta = self._delta()
                self.weight.data.copy_(revert_update(self.weight.data, delta, self.mode))
        else:
            self.weight.data = self._unmerged_weight
        self._unmerged_weight = None
        self.merged = False

    def forward(self, x):
        if self.merged:
            out = self._op(x, self.weight, self.bias)
            if torch.is_grad_enabled() and any(p.requires_grad for p in self.adapter_parameters()):
                out = _MergedGuard.apply(out, self.lora_A, self.lora_B, self.adapter_name)
            return out
        if self.dropout == 0 or not self.training:
            if self.lean_backward and self._lean_applies(x):
                return lie_op(*self._lean_args(x), self.bias, self.lora_A, self.lora_B,
                              self.scaling, self.mode, self._lean_op())
            return self._op(x, self.merged_weight(), self.bias)
        base = self._op(x, self.weight, self.bias)
        if self.dora:
            update = self.merged_weight() - self.weight
        else:
            update = update_only(self.weight, self._delta(), self.mode)
        return base + self._op(F.dropout(x, self.dropout, True), update, None)

    def _lean_applies(self, x):
        """The recompute-in-backward path: training the factors of a frozen W (also under
        autocast, where the op runs in the autocast dtype)."""
        return (torch.is_grad_enabled() and not self.weight.requires_grad and not self.dora
                and self.lora_A0 is None
                and (self.lora_A.requires_grad or self.lora_B.requires_grad))

    def adapter_parameters(self):
        """The trainable adapter tensors: A, B (and DoRA's magnitude)."""
        return [p for p in (self.lora_A, self.lora_B, self.lora_magnitude) if p is not None]

    def num_adapter_params(self):
        """Trainable adapter parameters: A, B (and DoRA's C_out magnitudes)."""
        return sum(p.numel() for p in self.adapter_parameters())

    def extra_repr(self):
        return (f'{super().extra_repr()}, rank={self.rank}, alpha={self.alpha}, '
                f'mode={self.mode}, dora={self.dora}, init={self.init}, '
                f'dropout={self.dropout}, merged={self.merged}')


class LieRAConv2d(LieRALayer, nn.Conv2d):
    """nn.Conv2d with LieRA factors; any groups (depthwise included), any kernel shape."""

    base_type = nn.Conv2d

    def __init__(self, *args, rank, name=None, **kwargs):
        """``nn.Conv2d`` arguments, ``rank`` and the other AdapterConfig settings by keyword
        (``mode``, ``alpha``, ``dropout``, ``dora``, ``init``)."""
        adapter = {k: kwargs.pop(k) for k in LAYER_KEYS if k in kwargs}
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_adapter(name, rank=rank, **adapter)

    @property
    def out_features_(self):
        return self.out_channels

    def _check_shape(self):
        for what, n in (('in_channels', self.in_channels), ('out_channels', self.out_channels)):
            if n % self.groups:
                raise ValueError(f'{self.adapter_name}: {what}={n} is not divisible by '
                                 f'groups={self.groups}')

    def factor_shapes(self, rank):
        kh, kw = self.kernel_size
        return (rank * kh, self.in_channels * kw), (self.out_channels // self.groups * kh,
                                                    rank * kh)

    def _op(self, x, weight, bias):
        return self._conv_forward(x, weight, bias)

    def _lean_args(self, x):
        if self.padding_mode != 'zeros' or isinstance(self.padding, str):
            if self.padding == 'valid':
                return x, self.weight
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            return F.pad(x, self._reversed_padding_repeated_twice, mode=mode), self.weight
        return x, self.weight

    def _lean_op(self):
        padding = [0, 0] if (self.padding_mode != 'zeros' or isinstance(self.padding, str)) \
            else list(self.padding)
        return ('conv', list(self.stride), padding, list(self.dilation), self.groups)


class LieRALinear(LieRALayer, nn.Linear):
    """nn.Linear with LieRA factors."""

    base_type = nn.Linear

    def __init__(self, *args, rank, name=None, **kwargs):
        """``nn.Linear`` arguments, ``rank`` and the other AdapterConfig settings by keyword."""
        adapter = {k: kwargs.pop(k) for k in LAYER_KEYS if k in kwargs}
        nn.Linear.__init__(self, *args, **kwargs)
        self._init_adapter(name, rank=rank, **adapter)

    @property
    def out_features_(self):
        return self.out_features

    def _check_shape(self):
        pass

    def factor_shapes(self, rank):
        return (rank, self.in_features), (self.out_features, rank)

    def _op(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def _lean_args(self, x):
        return x, self.weight

    def _lean_op(self):
        return ('linear', )


__all__ = ['LieRALayer', 'LieRAConv2d', 'LieRALinear', 'is_adapter_factor', 'is_adapter_key']
