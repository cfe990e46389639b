"""Parameter and module names: which keys adapters own, and the one name-matching rule.

A pattern (a regex) matches a dotted name when it full-matches the name or one of its dotted
suffixes: ``'depthwise_conv'`` and ``r'stages\\.0\\..*'`` both match
``stages.0.1.depthwise_conv``. Adapter targets, freezing patterns and the pretrained-load report
all use :func:`matches`. Parameter patterns (freezing) also select every parameter of a module
they match (:func:`matches_param`: ``'norm'`` selects ``stages.0.0.norm.weight`` and ``.bias``).
"""
import re
from typing import Iterable, List, Pattern, Sequence, Union

ADAPTER_PARAMS = ('lora_A', 'lora_B', 'lora_magnitude')


def is_adapter_factor(name: str) -> bool:
    """True for a trainable adapter parameter name (``lora_A``, ``lora_B``, DoRA's
    ``lora_magnitude``)."""
    return name.rsplit('.', 1)[-1] in ADAPTER_PARAMS


def is_adapter_key(name: str) -> bool:
    """True for any state-dict key adapters add (factors, magnitude, PiSSA's A0 / B0)."""
    return name.rsplit('.', 1)[-1].startswith('lora_')


def suffixes(name: str) -> List[str]:
    """``'a.b.c'`` -> ``['a.b.c', 'b.c', 'c']``."""
    parts = name.split('.')
    return ['.'.join(parts[i:]) for i in range(len(parts))]


def matches(regexes: Union[Pattern, Iterable[Pattern]], name: str) -> bool:
    """Whether any regex full-matches ``name`` or a dotted suffix of it."""
    regexes = [regexes] if isinstance(regexes, re.Pattern) else list(regexes)
    return any(r.fullmatch(s) for s in suffixes(name) for r in regexes)


def matches_param(regexes: Union[Pattern, Iterable[Pattern]], name: str) -> bool:
    """Whether a regex matches the parameter ``name`` or one of the modules that hold it (each by
    the suffix rule of :func:`matches`)."""
    regexes = [regexes] if isinstance(regexes, re.Pattern) else list(regexes)
    parts = name.split('.')
    return any(matches(regexes, '.'.join(parts[:end])) for end in range(len(parts), 0, -1))


def compile_patterns(patterns: Union[None, str, Sequence[str]],
                     what: str,
                     error=ValueError) -> List[Pattern]:
    """Compiled regexes of ``patterns`` (a string or a list of strings); ``error`` names
    ``what`` and the bad pattern."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)):
        raise error(f'{what} must be a list of regex strings, got {patterns!r}')
    out = []
    for p in patterns:
        if not isinstance(p, str):
            raise error(f'{what} patterns must be regex strings, got {p!r}')
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise error(f'{what} pattern {p!r} is not a valid regex: {e}') from None
    return out
