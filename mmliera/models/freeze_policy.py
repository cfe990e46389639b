"""FreezePolicy: the one rule that decides which parameters train.

It is applied when an adapted module is built (:func:`mmliera.models.adapt_module`: the module's
own parameters) and by :class:`mmliera.LieRARunner` right after the detector is built, before
DDP and the optimizer see it (the whole model, with :class:`mmliera.LieRAFreezeHook`'s
settings); the hook then only verifies and reports. For a parameter name, the first rule that
applies wins:

1. matches a ``frozen`` pattern                                   -> frozen
2. inside an adapted module that froze it itself at build time
   (``frozen_stages``: its weights and their adapter factors)     -> frozen
3. matches a ``trainable`` pattern: the policy's, or one the
   adapted module was built with (``LieRAConvNeXt(trainable=)``,
   ``type='LieRA'``'s ``trainable``)                              -> trainable
4. inside an adapted module (``adapted_modules``, default
   ``('backbone',)``, and every module built with adapters):
   trainable only if it is an adapter factor (``lora_A``, ``lora_B``, ``lora_magnitude``)
5. anything else (neck, heads: new, randomly initialised)        -> trainable

Patterns are regexes matched by :func:`mmliera.models.peft.names.matches_param` (the name, a
module holding it, or a dotted suffix of either: ``'norm'`` selects every module named
``norm``), e.g. ``r'backbone\\..*\\.norm\\.(weight|bias)'`` or ``'bias'``. A pattern that matches
no parameter is an error (a likely typo), never silently ignored.
"""
from typing import Dict, Iterable, List, Optional, Tuple

import torch.nn as nn

from ..utils.errors import UserError
from .peft.names import compile_patterns, is_adapter_factor, matches_param


class FreezePolicyError(UserError, ValueError):
    """A freezing pattern that cannot be used (matches nothing, or is not a regex)."""


def adapted_parts(model: nn.Module) -> Dict[str, nn.Module]:
    """{name: module} of the modules built with adapters (``adapt_module``); '' = the model."""
    return {n: m for n, m in model.named_modules() if hasattr(m, 'liera_trainable')}


class FreezePolicy:
    """Which parameters train (see the module docstring for the rules).

    Args:
        adapted_modules: top-level module names frozen except their adapter factors (besides
            the modules built with adapters, which always are).
        trainable: parameter-name regexes that train anyway.
        frozen: parameter-name regexes that are frozen anyway (win over everything).
    """

    def __init__(self, adapted_modules: Iterable[str] = ('backbone', ), trainable=(), frozen=()):
        if isinstance(adapted_modules, str):
            adapted_modules = (adapted_modules, )
        self.adapted_modules = tuple(adapted_modules)
        self.trainable_patterns = [trainable] if isinstance(trainable, str) \
            else list(trainable or ())
        self.frozen_patterns = [frozen] if isinstance(frozen, str) else list(frozen or ())
        self._trainable = compile_patterns(self.trainable_patterns, 'trainable', FreezePolicyError)
        self._frozen = compile_patterns(self.frozen_patterns, 'frozen', FreezePolicyError)

    def in_adapted(self, name: str) -> bool:
        """Whether ``name`` lies in one of ``adapted_modules`` (empty: the whole model)."""
        if not self.adapted_modules:
            return True
        return any(name == m or name.startswith(m + '.') for m in self.adapted_modules)

    @staticmethod
    def _parts(model):
        """[(prefix, module-level trainable regexes, names the module froze itself)]."""
        out = []
        for name, m in adapted_parts(model).items():
            prefix = f'{name}.' if name else ''
            out.append((prefix, compile_patterns(m.liera_trainable, 'trainable', FreezePolicyError),
                        {prefix + n
                         for n in getattr(m, 'liera_base_frozen', ())}))
        return out

    def _decide(self, name: str, parts) -> bool:
        if matches_param(self._frozen, name):
            return False
        owner = [(p, regs, froze) for p, regs, froze in parts if name.startswith(p)]
        if any(name in froze for _, _, froze in owner):
            return False
        if matches_param(self._trainable, name) or any(
                matches_param(regs, name[len(p):]) for p, regs, _ in owner):
            return True
        if owner or self.in_adapted(name):
            return is_adapter_factor(name)
        return True

    def resolve(self, model: nn.Module) -> Dict[str, bool]:
        """{name: trains} for every parameter of ``model``."""
        parts = self._parts(model)
        return {n: self._decide(n, parts) for n, _ in model.named_parameters()}

    def wants_grad(self, name: str, model: Optional[nn.Module] = None) -> bool:
        """The decision for one parameter name (with ``model``: also the trainable patterns and
        self-frozen parameters its adapted parts recorded)."""
        parts = self._parts(model) if isinstance(model, nn.Module) else []
        return self._decide(name, parts)

    def check_patterns(self, model: nn.Module):
        """Raise FreezePolicyError when a pattern (the policy's, or an adapted module's
        ``trainable``) matches no parameter: a typo would otherwise be silently ignored."""
        names = [n for n, _ in model.named_parameters()]
        checks: List[Tuple[str, str, object, List[str], str]] = []
        for what, pats, regs in (('trainable', self.trainable_patterns, self._trainable),
                                 ('frozen', self.frozen_patterns, self._frozen)):
            checks += [(what, p, r, names, type(model).__name__) for p, r in zip(pats, regs)]
        for name, m in adapted_parts(model).items():
            prefix = f'{name}.' if name else ''
            own = [n[len(prefix):] for n in names if n.startswith(prefix)]
            regs = compile_patterns(m.liera_trainable, 'trainable', FreezePolicyError)
            checks += [('trainable', p, r, own, type(m).__name__)
                       for p, r in zip(m.liera_trainable, regs)]
        for what, pattern, regex, pool, owner in checks:
            if not any(matches_param(regex, n) for n in pool):
                raise FreezePolicyError(
                    f'{what} pattern {pattern!r} matches no parameter of {owner}; names look '
                    f'like {pool[:3]}; fix the pattern (regexes match a name or a dotted '
                    'suffix of it)')

    def apply(self, model: nn.Module) -> List[str]:
        """Check the patterns, set requires_grad by the policy; returns the changed names."""
        self.check_patterns(model)
        wanted = self.resolve(model)
        changed = []
        for n, p in model.named_parameters():
            if p.requires_grad != wanted[n]:
                p.requires_grad_(wanted[n])
                changed.append(n)
        return changed
