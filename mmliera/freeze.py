"""The freezing policy: one function used at build time, before the DDP wrap, and by the hook.

For a parameter name (the detector's ``named_parameters()``), first rule that applies wins:

1. matches a ``frozen`` pattern        -> frozen
2. matches a ``trainable`` pattern     -> trainable
3. inside ``adapted_modules`` (default ``('backbone',)``, or the module itself when
   ``adapted_modules`` is empty): trainable only if it is a LieRA factor (``lora_A``/``lora_B``)
   that the module has not frozen itself (e.g. ``frozen_stages``)
4. anything else (neck, heads: new, randomly initialised)  -> trainable

Patterns are regexes full-matched against the name or a dotted suffix of it (as in
``inject_adapters``), e.g. ``r'backbone\\..*\\.norm\\.(weight|bias)'`` or ``'bias'``.
"""
import re

from .adapters.layers import is_adapter_factor


def _compile(patterns, what):
    if isinstance(patterns, str):
        patterns = [patterns]
    out = []
    for p in patterns or ():
        if not isinstance(p, str):
            raise TypeError(f'{what} patterns must be regex strings, got {p!r}')
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise ValueError(f'{what} pattern {p!r} is not a valid regex: {e}') from None
    return out


def _matches(regexes, name):
    parts = name.split('.')
    suffixes = ['.'.join(parts[i:]) for i in range(len(parts))]
    return any(r.fullmatch(s) for r in regexes for s in suffixes)


class FreezePolicy:
    """Which parameters train. ``adapted_modules``: top-level prefixes frozen but for adapters."""

    def __init__(self, adapted_modules=('backbone', ), trainable=(), frozen=()):
        if isinstance(adapted_modules, str):
            adapted_modules = (adapted_modules, )
        self.adapted_modules = tuple(adapted_modules)
        self.trainable_patterns = list(trainable or ())
        self.frozen_patterns = list(frozen or ())
        self._trainable = _compile(trainable, 'trainable')
        self._frozen = _compile(frozen, 'frozen')

    def _in_adapted(self, name):
        if not self.adapted_modules:
            return True
        return any(name == m or name.startswith(m + '.') for m in self.adapted_modules)

    def wants_grad(self, name, requires_grad=True):
        """Policy decision for one parameter (``requires_grad``: the module's own state)."""
        if _matches(self._frozen, name):
            return False
        if _matches(self._trainable, name):
            return True
        if self._in_adapted(name):
            return is_adapter_factor(name) and requires_grad
        return True

    def resolve(self, model):
        """{name: wanted requires_grad} for every parameter of ``model``."""
        return {n: self.wants_grad(n, p.requires_grad) for n, p in model.named_parameters()}

    def check_patterns(self, model):
        """Raise when a trainable/frozen pattern matches no parameter (a likely typo)."""
        names = [n for n, _ in model.named_parameters()]
        for what, pats, regs in (('trainable', self.trainable_patterns, self._trainable),
                                 ('frozen', self.frozen_patterns, self._frozen)):
            for p, r in zip(pats, regs):
                if not any(_matches([r], n) for n in names):
                    raise ValueError(f'{what} pattern {p!r} matches no parameter of '
                                     f'{type(model).__name__}; names look like {names[:3]}')

    def apply(self, model):
        """Set requires_grad by the policy; returns the names whose flag changed."""
        self.check_patterns(model)
        wanted = self.resolve(model)
        changed = []
        for n, p in model.named_parameters():
            if p.requires_grad != wanted[n]:
                p.requires_grad_(wanted[n])
                changed.append(n)
        return changed


def freeze_all_but_adapters(module, trainable=()):
    """Build-time freezing of an adapted module: only LieRA factors (+ ``trainable``) train."""
    return FreezePolicy(adapted_modules=(), trainable=trainable).apply(module)


def parameter_table(model):
    """Rows (top-level module, trainable, frozen, adapter) with a final 'total' row."""
    rows = {}
    for n, p in model.named_parameters():
        top = n.split('.', 1)[0]
        r = rows.setdefault(top, [0, 0, 0])
        r[0 if p.requires_grad else 1] += p.numel()
        if is_adapter_factor(n):
            r[2] += p.numel()
    out = [(k, *v) for k, v in rows.items()]
    out.append(('total', *[sum(r[i] for r in rows.values()) for i in range(3)]))
    return out


def format_table(rows):
    """A plain-text table of ``parameter_table`` rows."""
    head = ('module', 'trainable', 'frozen', 'adapter')
    body = [(r[0], *(f'{x:,}' for x in r[1:])) for r in rows]
    widths = [max(len(str(row[i])) for row in [head] + body) for i in range(4)]
    fmt = '{:<%d}  {:>%d}  {:>%d}  {:>%d}' % tuple(widths)
    lines = [fmt.format(*head), '  '.join('-' * w for w in widths)]
    lines += [fmt.format(*row) for row in body]
    return '\n'.join(lines)
