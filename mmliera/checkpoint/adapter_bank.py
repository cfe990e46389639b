"""AdapterBank: several adapter files on one base model, switched by name.

    model = ...                                   # built from the base config, base weights in
    bank = AdapterBank(model, config=cfg)         # (merge=None | 'copy' | 'inplace')
    bank.load('shapes', 'shapes/adapters_last.safetensors')
    bank.load('discs', 'discs/adapters_last.safetensors')
    bank.set('discs')                             # the model now computes task 'discs'
    with bank.base_only():                        # the base alone (no adapter)
        ...

Each adapter's tensors (factors, class layers, whatever else trained) are held once, on the
model's device. A switch points the model's parameters and buffers at the chosen adapter's
tensors (nothing is copied) and sets the module attributes that follow the task's classes
(``num_classes``, ``out_features``, ...: found by building the file's own config on the meta
device), so tasks may have different classes. Switching with ``merge``:

- ``None`` (default): the layers rebuild W' from their factors in every forward;
- ``'copy'``: a switch folds W' into the weights, the original W kept (unmerge bit-exact;
  a second copy of every adapted weight);
- ``'inplace'``: a switch folds W' into W's own memory, no second copy; unmerging recomputes W
  from W' and ΔW (:func:`~mmliera.models.peft.formulas.revert_update`: exact up to rounding,
  which accumulates over switches; not with DoRA).

A file that does not fit the base (other architecture or config, other adapted layers or ranks,
other base weights: the file's ``base_sha256``) raises one :class:`AdapterBankError` naming the
file and the difference; nothing of it is loaded. Not thread-safe: one switch at a time.
"""
import contextlib
import json
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.config import Config

from ..datasets.metainfo import config_dataset_meta
from ..models.peft import adapter_layers, merge_adapters, unmerge_adapters
from ..utils.errors import UserError
from .adapter_file import (ADAPTER_FILE_DEFAULTS, AdapterCheckpointError, adapter_settings,
                           adapter_state_dict, base_digests, base_weights_sha256,
                           read_adapter_checkpoint)

MERGE_MODES = (None, 'copy', 'inplace')
_SIMPLE = (int, float, bool, str, type(None))
_RUNTIME_ATTRS = ('training', 'merged')  # module state, not the task's
# the class count, the weight sources (the weights are compared by checksum) and the train /
# test settings (the serving config's apply to every task) may differ between adapters' configs
_IGNORED_CONFIG_KEYS = ('num_classes', 'init_cfg', 'pretrained', 'train_cfg', 'test_cfg')


class AdapterBankError(UserError, ValueError):
    """An adapter name or file the bank cannot take (nothing was loaded or switched)."""


def _flat(node, prefix=''):
    """{dotted key: leaf} of a config tree (lists indexed)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    out = {}
    for k, v in items:
        out.update(_flat(v, f'{prefix}.{k}' if prefix else str(k)))
    return out


def config_differences(file_cfg: Config, base_cfg: Config) -> List[str]:
    """'key: file vs here' for every setting of ``model`` that differs, but those of
    ``_IGNORED_CONFIG_KEYS``."""

    def model_of(cfg):
        return {
            k: v
            for k, v in _flat(dict(cfg.get('model') or {}), 'model').items()
            if not any(part in k.split('.') for part in _IGNORED_CONFIG_KEYS)
        }

    mine, theirs = model_of(file_cfg), model_of(base_cfg)
    return [
        f'{k}: {mine.get(k, "(absent)")!r} in the file, {theirs.get(k, "(absent)")!r} here'
        for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)
    ]


def _simple_attrs(module):
    return {
        k: v
        for k, v in vars(module).items() if not k.startswith('_') and k not in _RUNTIME_ATTRS and
        (isinstance(v, _SIMPLE) or (isinstance(v, tuple) and all(isinstance(x, _SIMPLE)
                                                                 for x in v)))
    }


def _build_meta(cfg):
    """The config's model without memory (meta device; on the CPU if a constructor needs
    real tensors)."""
    from ..models.builder import build_model
    try:
        with torch.device('meta'):
            return build_model(cfg)
    except Exception:
        return build_model(cfg)


class _Adapter:
    """One loaded adapter: its tensors (model keys), class names, attribute overrides."""

    def __init__(self, name, path, tensors, classes, attrs, config):
        self.name, self.path, self.tensors = name, path, tensors
        self.classes, self.attrs, self.config = classes, attrs, config

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


class AdapterBank:
    """Named adapters on one base model (see the module docstring).

    Args:
        model (nn.Module): the base model: built from ``config``, its base weights loaded, no
            adapter file loaded, not merged; on the device it will run on.
        config (Config, optional): its config; files are checked against it and the class
            names of a file without its own come from it.
        merge (str, optional): None, 'copy' or 'inplace' (see the module docstring).
    """

    def __init__(self, model: nn.Module, config: Optional[Config] = None, merge=None):
        if merge not in MERGE_MODES:
            raise AdapterBankError(f'merge={merge!r}: choose one of {MERGE_MODES}')
        model = getattr(model, 'module', model)
        layers = adapter_layers(model)
        if not layers:
            raise AdapterBankError(f'{type(model).__name__} has no LieRA adapters: build the '
                                   "model from the config the adapters were trained with")
        if any(m.merged for m in layers.values()):
            raise AdapterBankError('the base model has merged adapters: unmerge them first '
                                   '(mmliera.unmerge_adapters(model))')
        self.model, self.config, self.merge = model, config, merge
        self.settings = adapter_settings(model)
        self._state = model.state_dict(keep_vars=True)
        self._modules = dict(model.named_modules())
        self._base: Dict[str, torch.Tensor] = {}  # the base's own tensor of every key swapped
        self._base_attrs: Dict[tuple, object] = {}
        self._digests = base_digests(model)  # (the base's weights, checked against files)
        self._expected: Dict[tuple, set] = {}  # adapted_modules -> the keys a file must hold
        self._adapters: Dict[str, _Adapter] = {}
        self.active: Optional[str] = None

    # -----------------------------------------------------------------------------------------
    # loading

    @property
    def names(self) -> List[str]:
        """The loaded adapters' names, in load order."""
        return list(self._adapters)

    def classes(self, name: str):
        """The class names of adapter ``name`` (None when neither file nor config says)."""
        return self._get(name).classes

    def nbytes(self, name: str) -> int:
        """Bytes held for adapter ``name`` (its tensors)."""
        return self._get(name).nbytes()

    def _get(self, name):
        if name not in self._adapters:
            raise AdapterBankError(f'no adapter named {name!r}; loaded: '
                                   f'{", ".join(self._adapters) or "none"}')
        return self._adapters[name]

    def load(self, name: str, path: str, config: Optional[Config] = None) -> None:
        """Load the adapter file ``path`` as ``name`` (all checks first, then all or nothing;
        the active adapter stays active). ``config``: the file's training config when the file
        holds none (files of AdapterCheckpointHook hold theirs)."""
        if not isinstance(name, str) or not name or any(c in name for c in '/\\=') or \
                name.startswith('.'):
            raise AdapterBankError(f'adapter name {name!r}: give a non-empty name without '
                                   "'/', '\\\\' or '=' (it names the output folder)")
        if name in self._adapters:
            raise AdapterBankError(f'adapter name {name!r} is used twice (for '
                                   f'{self._adapters[name].path} and {path}); loaded names: '
                                   f'{", ".join(self._adapters)}')
        try:
            tensors, meta = read_adapter_checkpoint(path)
        except AdapterCheckpointError as e:
            raise AdapterBankError(str(e)) from None
        file_cfg = config if config is not None else (
            Config.fromstring(meta['config'], '.py') if meta.get('config') else None)
        self._check_settings(path, meta)
        self._check_config(path, file_cfg)
        attrs = self._check_tensors(path, tensors, meta, file_cfg)
        self._check_base(path, meta, tensors)
        classes = json.loads(meta['classes']) if meta.get('classes') else None
        if classes is None:
            classes = _config_classes(file_cfg if file_cfg is not None else self.config)
        self._adapters[name] = _Adapter(name, path, self._place(tensors), classes, attrs, file_cfg)
        for key in tensors:
            self._base.setdefault(key, self._state[key])
        for module_name, values in attrs.items():
            module = self._modules[module_name]
            for attr in values:
                self._base_attrs.setdefault((module_name, attr), getattr(module, attr))

    def _check_settings(self, path, meta):
        saved = json.loads(meta.get('adapters') or '{}')
        missing = sorted(set(self.settings) - set(saved))
        extra = sorted(set(saved) - set(self.settings))
        if missing or extra:
            raise AdapterBankError(
                f'{path} was made from another base: its adapted layers differ (this model '
                f'only: {missing[:3]}{" ..." if len(missing) > 3 else ""}; the file only: '
                f'{extra[:3]}{" ..." if len(extra) > 3 else ""}); serve it with the config it '
                'was trained with')
        for layer, want in self.settings.items():
            for key in ('mode', 'rank', 'alpha', 'dora', 'init', 'lora_A', 'lora_B'):
                got = saved[layer].get(key, ADAPTER_FILE_DEFAULTS.get(key))
                if got != want[key]:
                    raise AdapterBankError(
                        f'{path} was made from another base: layer {layer} has {key}={got!r} '
                        f'in the file, {want[key]!r} here; serve it with the config it was '
                        'trained with')

    def _check_config(self, path, file_cfg):
        if file_cfg is None or self.config is None:
            return
        diffs = config_differences(file_cfg, self.config)
        if diffs:
            raise AdapterBankError(
                f'{path} was made from another config: {"; ".join(diffs[:3])}'
                f'{f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""}; adapters served '
                'together must share the base config (only the classes may differ)')

    def _check_tensors(self, path, tensors, meta, file_cfg):
        """{module: {attribute: value}}: what a switch to the file's task sets (other
        classes); raises unless the file holds this model's trained tensors, shapes fitting."""
        modules = tuple(json.loads(meta.get('adapted_modules', '["backbone"]')))
        if modules not in self._expected:  # (names only: the same whatever is swapped in)
            self._expected[modules] = set(adapter_state_dict(self.model, modules))
        expected = self._expected[modules]
        extra, absent = sorted(set(tensors) - set(self._state)), sorted(expected - set(tensors))
        if extra or absent:
            raise AdapterBankError(
                f'{path} was made from another base: tensors only in the file: {extra[:3]}; '
                f'trained tensors of this model missing from the file: {absent[:3]}; serve it '
                'with the config it was trained with')
        other = {
            k: tuple(t.shape)
            for k, t in tensors.items() if tuple(t.shape) != tuple(self._state[k].shape)
        }
        if not other:
            return {}
        first = next(iter(other))
        if file_cfg is None:
            raise AdapterBankError(
                f'{path} has tensors of other shapes than this model ({first} '
                f'{other[first]} vs {tuple(self._state[first].shape)}: other classes?) and '
                'holds no config to rebuild them from; save it with AdapterCheckpointHook, or '
                'pass its training config')
        built = _build_meta(file_cfg)
        shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
        wrong = [k for k, s in other.items() if shapes.get(k) != s]
        if wrong:
            raise AdapterBankError(
                f'{path}: {wrong[0]} has shape {other[wrong[0]]} in the file, '
                f'{shapes.get(wrong[0])} in the model of its own config; the file is damaged '
                'or was saved from another model')
        # the modules holding a tensor of another shape and those around them (a head's
        # num_classes, its classifier's out_features)
        owners = {k.rpartition('.')[0] for k in other}
        around = {'.'.join(o.split('.')[:i]) for o in owners for i in range(o.count('.') + 2)}
        attrs = {}
        for module_name, module in built.named_modules():
            mine = self._modules.get(module_name)
            if mine is None or module_name not in around:
                continue
            here, there = _simple_attrs(mine), _simple_attrs(module)
            changed = {k: v for k, v in there.items() if k in here and here[k] != v}
            if changed:
                attrs[module_name] = changed
        return attrs

    def _check_base(self, path, meta, tensors):
        want = meta.get('base_sha256')
        if not want:
            return  # (a file of an earlier version: the checks above are all there is)
        have = base_weights_sha256(self.model, tensors, self._digests)
        if have != want:
            raise AdapterBankError(
                f'{path} was made from other base weights (sha256 {want[:16]}... in the file, '
                f'{have[:16]}... here): load the base checkpoint it was trained from (the '
                "config's load_from / pretrained backbone)")

    def _place(self, tensors):
        out = {}
        for k, t in tensors.items():
            ref = self._state[k]
            # (a copy of its own: safetensors' tensors are views of the file's memory map,
            # resident only once read and gone with the file)
            t = t.to(device=ref.device, dtype=ref.dtype, copy=True)
            # (the base's requires_grad: what trains stays recognisable, e.g. to a later load)
            out[k] = nn.Parameter(t, ref.requires_grad) if isinstance(ref, nn.Parameter) else t
        return out

    # -----------------------------------------------------------------------------------------
    # switching

    def set(self, name: Optional[str]) -> None:
        """Make adapter ``name`` active (None: the base alone)."""
        adapter = None if name is None else self._get(name)
        if name == self.active:
            return
        if self.merge:
            unmerge_adapters(self.model)
        tensors = adapter.tensors if adapter else {}
        for key, base in self._base.items():
            self._swap(key, tensors.get(key, base))
        attrs = adapter.attrs if adapter else {}
        for (module_name, attr), base in self._base_attrs.items():
            value = attrs.get(module_name, {}).get(attr, base)
            setattr(self._modules[module_name], attr, value)
        self.active = name
        if self.merge and adapter is not None:
            merge_adapters(self.model, keep_original=self.merge == 'copy')

    def _swap(self, key, tensor):
        module_name, _, leaf = key.rpartition('.')
        module = self._modules[module_name]
        if leaf in module._parameters:
            module._parameters[leaf] = tensor
        else:
            module._buffers[leaf] = tensor

    @contextlib.contextmanager
    def base_only(self):
        """Within the block the model runs without any adapter; the active one comes back."""
        previous = self.active
        self.set(None)
        try:
            yield self.model
        finally:
            self.set(previous)

    def remove(self, name: str) -> None:
        """Drop adapter ``name`` (the base becomes active if it was)."""
        self._get(name)
        if self.active == name:
            self.set(None)
        del self._adapters[name]


def _config_classes(cfg):
    if cfg is None:
        return None
    try:
        return config_dataset_meta(cfg).get('classes')
    except Exception:  # a config without a test dataset
        return None
