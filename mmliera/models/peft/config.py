"""AdapterConfig: the one home of the adapter settings, their defaults and their validation.

Injection, the layers, the backbones, the adapter file format and the tools read the defaults
and the checks from here. Settings (defaults):

    mode='taylor'     W' = W + W ⊙ ΔW ('exp': W ⊙ exp(ΔW), 'lora': W + ΔW)
    rank=16           r; ΔW = (alpha / r) · (B @ A).view(W.shape)
    alpha=None        None: 2·r
    dropout=0.0       on the adapter branch's input, in training
    targets=None      None: every nn.Conv2d / nn.Linear; else regexes or
                      dict(pattern=regex, <any setting above but targets>) (first match wins)
    dora=False        DoRA's magnitude on the LieRA weight
    init='default'    'pissa': PiSSA factors on W's principal subspace

A wrong value raises :class:`AdapterConfigError` naming the setting and what to write instead.
"""
import dataclasses
import math
import numbers
import re
from typing import Any, Dict, List, Optional, Pattern, Tuple

from ...utils.errors import UserError
from .formulas import MODES

INITS = ('default', 'pissa')
LAYER_KEYS = ('mode', 'rank', 'alpha', 'dropout', 'dora', 'init')


class AdapterConfigError(UserError, ValueError):
    """An adapter setting that cannot be used (the message names it and the fix)."""


class AdapterTargetTypeError(AdapterConfigError, TypeError):
    """A target that matches only modules adapters cannot wrap (not Conv2d / Linear)."""


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
    """Validated adapter settings (see the module docstring for each field)."""

    mode: str = 'taylor'
    rank: int = 16
    alpha: Optional[float] = None
    dropout: float = 0.0
    targets: Any = None
    dora: bool = False
    init: str = 'default'

    @classmethod
    def fields(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, adapter: Optional[dict] = None, where: str = 'adapter', check=True):
        """``AdapterConfig(**adapter)`` with one clear error for a non-dict or an unknown key;
        ``check=False`` leaves the values to be checked where they are used (per layer)."""
        if adapter is None:
            return cls()
        if isinstance(adapter, AdapterConfig):
            return adapter
        if not isinstance(adapter, dict):
            raise AdapterConfigError(
                f'{where} must be a dict like {cls.defaults()}, got {adapter!r}')
        unknown = sorted(set(adapter) - set(cls.fields()))
        if unknown:
            raise AdapterConfigError(f'unknown {where} keys {unknown}; allowed: '
                                     f'{sorted(cls.fields())}')
        cfg = cls(**adapter)
        return cfg.check(where) if check else cfg

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def layer_alpha(self) -> float:
        """alpha as a layer uses it (None -> 2·rank)."""
        return 2 * self.rank if self.alpha is None else self.alpha

    def check(self, where: str = 'adapter') -> 'AdapterConfig':
        """Raise AdapterConfigError for a value no layer can use; returns ``self``."""
        rank, alpha, dropout = self.rank, self.alpha, self.dropout
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank <= 0:
            raise AdapterConfigError(f'{where}: rank must be a positive int, got {rank!r}')
        if self.mode not in MODES:
            raise AdapterConfigError(f'{where}: unknown LieRA mode {self.mode!r}; choose one '
                                     f'of {MODES}')
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, numbers.Real)
                                  or not math.isfinite(alpha) or alpha <= 0):
            raise AdapterConfigError(f'{where}: alpha must be a positive finite number, got '
                                     f'{alpha!r}')
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout < 1):
            raise AdapterConfigError(f'{where}: dropout must be a number in [0, 1), got '
                                     f'{dropout!r}')
        if not isinstance(self.dora, bool):
            raise AdapterConfigError(f'{where}: dora must be True or False, got {self.dora!r}')
        if self.init not in INITS:
            raise AdapterConfigError(f'{where}: unknown init {self.init!r}; choose one of '
                                     f'{INITS}')
        if self.targets is not None:
            self.target_specs()
        return self

    def layer_settings(self) -> Dict[str, Any]:
        """The per-layer settings as given (everything but ``targets``), unchecked."""
        return {k: getattr(self, k) for k in LAYER_KEYS}

    def layer_options(self) -> Dict[str, Any]:
        """The per-layer settings (everything but ``targets``), alpha resolved."""
        return dict(
            mode=self.mode,
            rank=int(self.rank),
            alpha=self.layer_alpha,
            dropout=float(self.dropout),
            dora=self.dora,
            init=self.init)

    def target_specs(self) -> List[Tuple[str, Pattern, 'AdapterConfig']]:
        """[(pattern, regex, settings for the layers it matches)], in order; raises on
        malformed items. An overridden rank without alpha gets alpha = 2·rank."""
        targets = self.targets
        if isinstance(targets, str):
            targets = [targets]
        elif isinstance(targets, dict):
            targets = ([targets] if 'pattern' in targets else
                       [dict(pattern=p, **(o or {})) for p, o in targets.items()])
        if not isinstance(targets, (list, tuple)) or not targets:
            raise AdapterConfigError('targets must be None or a non-empty list of regex strings / '
                                     f'dict(pattern=..., rank=..., alpha=...), got {targets!r}')
        specs = []
        for item in targets:
            if isinstance(item, str):
                pattern, overrides = item, {}
            elif isinstance(item, dict) and isinstance(item.get('pattern'), str):
                overrides = {k: v for k, v in item.items() if k != 'pattern'}
                unknown = sorted(set(overrides) - set(LAYER_KEYS))
                if unknown:
                    raise AdapterConfigError(f'target {item!r}: unknown keys {unknown}; '
                                             f'allowed: pattern, {", ".join(LAYER_KEYS)}')
                pattern = item['pattern']
            else:
                raise AdapterConfigError(f'target {item!r} must be a regex string or a dict '
                                         "with a 'pattern' string")
            try:
                regex = re.compile(pattern)
            except re.error as e:
                raise AdapterConfigError(f'target {pattern!r} is not a valid regex: {e}') \
                    from None
            if 'rank' in overrides and 'alpha' not in overrides:
                overrides['alpha'] = None  # alpha follows an overridden rank
            specs.append((pattern, regex, self.replace(targets=None, **overrides)))
        return specs

    def replace(self, **changes) -> 'AdapterConfig':
        return dataclasses.replace(self, **changes)
