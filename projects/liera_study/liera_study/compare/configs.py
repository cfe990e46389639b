"""What a comparison reads from its configs: the methods given on the command line, each config
as a run sees it (read once per comparison), its fingerprints, trainable parameters, starting
checkpoint, validation and the iterations it validates after."""
import hashlib
import json
import os
import os.path as osp

from .errors import ComparisonError


def parse_methods(specs):
    """[(name, config path)] from ``CONFIG`` or ``NAME=CONFIG`` items; names must be unique."""
    methods = []
    for spec in specs:
        name, sep, config = spec.partition('=')
        if not sep:
            name, config = osp.splitext(osp.basename(spec))[0], spec
        if not name or not config:
            raise ComparisonError(f'method {spec!r}: write CONFIG or NAME=CONFIG')
        if not osp.isfile(config):
            raise ComparisonError(f'method {name}: config {config} does not exist')
        if any(n == name for n, _ in methods):
            raise ComparisonError(f'method name {name!r} is given twice; name them apart with '
                                  'NAME=CONFIG')
        methods.append((name, config))
    return methods


_READ = {}  # (path, mtime_ns, size) -> the Config as read; main() empties it for each comparison


def load_config(config, options):
    """``Config.fromfile(config)`` with ``options`` merged. A file is read once per comparison
    (and again when it changes): mmengine reads the model indexes of a ``mmdet::`` base's
    package on every read, ~1 s, and a comparison loads each config many times."""
    import copy

    from mmengine.config import Config
    stat = os.stat(config)
    key = (osp.abspath(config), stat.st_mtime_ns, stat.st_size)
    if key not in _READ:
        _READ[key] = Config.fromfile(config)
    cfg = copy.deepcopy(_READ[key])
    if options:
        cfg.merge_from_dict(options)
    return cfg


def forget_read_configs():
    """Read every config afresh from now on (a new comparison)."""
    _READ.clear()


def fingerprint(config, options):
    """Hash of the config as a run sees it (file + its bases, merged, with the options)."""
    return fingerprints(config, options)[0]


def checkout_root(config):
    """The folder whose absolute path a config's ``{{ fileDirname }}`` paths start with: the
    nearest one above ``config`` holding ``.git``, else the current folder."""
    folder = osp.dirname(osp.abspath(config))
    while True:
        if osp.exists(osp.join(folder, '.git')):
            return folder
        parent = osp.dirname(folder)
        if parent == folder:
            return os.getcwd()
        folder = parent


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprints(config, options):
    """(hash of the whole config, hash of what the trainable count depends on: the model and
    the custom hooks) of the config as a run sees it, with the checkout's path as ``<root>``
    (a study's records stay valid in another clone or on another machine)."""
    cfg = load_config(config, options)
    root = checkout_root(config).rstrip(os.sep) + os.sep
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
    model = repr((cfg.get('model'), cfg.get('custom_hooks')))
    return _sha(text.replace(root, '<root>/')), _sha(model.replace(root, '<root>/'))


def earlier_fingerprints(config, options):
    """The whole config's hash as earlier versions of the tool took it (of its ``pretty_text``:
    with the checkout's path itself, then as ``<root>``), so their records are recognised."""
    text = load_config(config, options).pretty_text  # (yapf-formatted: ~1.5 s)
    root = checkout_root(config).rstrip(os.sep) + os.sep
    return {_sha(text), _sha(text.replace(root, '<root>/'))}


def count_trainable(config, options):
    """(detector trainable parameters, backbone trainable parameters, {part: trainable}) as
    training builds them (the freezing policy applied)."""
    from mmliera.apis.model import build_model
    from mmliera.engine.hooks.freeze_hook import freeze_hooks_of
    cfg = load_config(config, options)
    model = build_model(cfg)
    for hook in freeze_hooks_of(cfg.get('custom_hooks')):
        hook.policy.apply(model)
    parts = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            part = n.split('.', 1)[0]
            parts[part] = parts.get(part, 0) + p.numel()
    return sum(parts.values()), parts.get('backbone', 0), parts


def start_checkpoint(cfg):
    """The local file the run starts from: ``load_from`` (a whole detector, e.g. for
    ``type='LieRADetector'``), else the backbone's ``init_cfg`` Pretrained; or None."""
    init = (cfg.get('model', {}).get('backbone', {}) or {}).get('init_cfg') or {}
    path = cfg.get('load_from') or (init.get('checkpoint') if isinstance(init, dict) else None)
    return path if isinstance(path, str) and '://' not in path else None


def has_validation(cfg):
    return bool(
        cfg.get('val_dataloader') and cfg.get('val_evaluator') and cfg.get('val_cfg') is not None)


def validation_iters(cfg, up_to):
    """The iterations ``1..up_to`` after which an iteration-based run of ``cfg`` validates
    (mmengine's IterBasedTrainLoop: every ``val_interval`` from ``val_begin``, and the last);
    None for an epoch-based run."""
    loop = cfg.get('train_cfg') or {}
    if loop.get('by_epoch') or 'max_iters' not in loop or not cfg.get('val_dataloader'):
        return None
    interval, begin, last = loop.get('val_interval', 1), loop.get('val_begin', 1), \
        loop['max_iters']
    return [i for i in range(1, up_to + 1) if i >= begin and (i % interval == 0 or i == last)]
