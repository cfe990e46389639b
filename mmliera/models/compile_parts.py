"""compile_parts: torch.compile on chosen submodules of a model, in place.

    compile_parts(detector, ['backbone'])                   # inductor, torch.compile's defaults
    compile_parts(model, ['backbone', 'neck'], mode='max-autotune-no-cudagraphs', dynamic=None)

Each part's ``__call__`` runs through ``torch.compile`` (as ``nn.Module.compile``): the module
object, its parameters, state_dict keys, hooks and wrappers (DDP, the optimizer, checkpoints)
see the same module as before. A detector's ``train_step`` (mmengine's ``cfg.compile``) has
data-dependent proposals, sampling and RoI ops; its backbone and neck have none, so they are
the parts worth compiling. Unlike ``nn.Module.compile``, copies (``copy.deepcopy``, as EMA hooks
make) and pickles of a compiled module come out uncompiled instead of calling the original.
"""
import inspect
import os
import shutil

import torch

from ..utils.errors import UserError


class CompileSettingError(UserError, ValueError):
    """A part name or a torch.compile setting that cannot be used."""


def _uncompiled():
    return None


class _CompiledCall:
    """``torch.compile(module._call_impl)``, dropped by copies and pickles of the module."""

    def __init__(self, module, kwargs):
        self.fn = torch.compile(module._call_impl, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return _uncompiled, ()


def check_compile_kwargs(kwargs, where='compile_parts'):
    """Raise :class:`CompileSettingError` for a setting torch.compile does not take, an unknown
    backend, or inductor on a CPU without a C++ compiler."""
    allowed = [p for p in inspect.signature(torch.compile).parameters if p != 'model']
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise CompileSettingError(
            f'{where}: torch.compile takes no {", ".join(map(repr, unknown))}; its settings are '
            f'{", ".join(allowed)}')
    backend = kwargs.get('backend', 'inductor')
    if isinstance(backend, str):
        from torch._dynamo import list_backends
        known = list_backends(exclude_tags=())
        if backend not in known:
            raise CompileSettingError(
                f'{where}: unknown torch.compile backend {backend!r}; this torch has '
                f'{", ".join(sorted(known))}')


def check_cpp_compiler(where='compile_parts'):
    """Inductor's CPU code needs a C++ compiler (``CXX``, else g++); say so before a run."""
    cxx = os.environ.get('CXX') or 'g++'
    if shutil.which(cxx.split()[0]) is None:
        raise CompileSettingError(
            f"{where}: inductor compiles CPU code with a C++ compiler and found none ({cxx!r}); "
            "install g++ (or set CXX), or compile with backend='aot_eager'")


def resolve_parts(model, parts, where='compile_parts'):
    """{name: submodule} for dotted names (``'backbone'``, ``'backbone.stages.3'``)."""
    if isinstance(parts, str):
        parts = [parts]
    if not parts:
        raise CompileSettingError(f'{where}: parts is empty; name the submodules to compile, '
                                  "e.g. parts=['backbone']")
    found = {}
    for name in parts:
        try:
            module = model.get_submodule(name) if name else model
        except (AttributeError, TypeError):
            children = ', '.join(n for n, _ in model.named_children())
            raise CompileSettingError(
                f'{where}: the model ({type(model).__name__}) has no submodule {name!r}; its '
                f'parts are {children} (dotted names reach inside, e.g. '
                "'backbone.stages')") from None
        found[name] = module
    for a in found:
        for b in found:
            if b != a and (a == '' or b.startswith(a + '.')):
                outer = repr(a) if a else 'the model'
                raise CompileSettingError(f'{where}: {b!r} lies inside {outer}, which is '
                                          'compiled as a whole; name one of them')
    return found


def compile_parts(model, parts=('backbone', ), where='compile_parts', **compile_kwargs):
    """Compile ``parts`` of ``model`` in place; returns {name: module}.

    ``compile_kwargs`` go to ``torch.compile`` (``backend``, ``mode``, ``dynamic``,
    ``fullgraph``, ``options``). A part compiled already is compiled again with the new
    settings. :func:`uncompile_parts` undoes it. ``where`` names the caller in errors.
    """
    check_compile_kwargs(compile_kwargs, where)
    found = resolve_parts(model, parts, where)
    for module in found.values():
        module._compiled_call_impl = _CompiledCall(module, dict(compile_kwargs))
    _raise_recompile_limit(len(compiled_parts(model)))
    return found


def _raise_recompile_limit(parts):
    """Every compiled part shares the code of ``nn.Module._call_impl``, and dynamo keeps at most
    ``recompile_limit`` (8) compiled variants per code before running it eagerly: room for
    8 per part (training, evaluation, new input shapes)."""
    config = torch._dynamo.config
    name = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'
    setattr(config, name, max(getattr(config, name), 8 * parts))


def compiled_parts(model):
    """Names of the submodules of ``model`` that run compiled by :func:`compile_parts`."""
    return [
        n for n, m in model.named_modules()
        if isinstance(getattr(m, '_compiled_call_impl', None), _CompiledCall)
    ]


def uncompile_parts(model):
    """Run every part eagerly again; returns the names that were compiled."""
    names = compiled_parts(model)
    for name in names:
        model.get_submodule(name)._compiled_call_impl = None
    return names


__all__ = [
    'CompileSettingError', 'check_compile_kwargs', 'check_cpp_compiler', 'compile_parts',
    'compiled_parts', 'resolve_parts', 'uncompile_parts'
]
