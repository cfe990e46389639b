"""Is a config's data there? One clear error before the runner is built.

``check_data(cfg, ('train', 'val'))`` looks at the annotation files and image folders of the
config's data loaders (``data_root`` + ``ann_file`` / ``data_prefix``, through dataset wrappers;
an mmpretrain list file without a prefix: ``data_root`` itself)
and the evaluators' ``ann_file`` and raises :class:`DataNotFoundError` listing every missing
path, instead of a traceback from deep inside the dataset. Datasets that make their own data
(``MAKES_ITS_DATA``: ``SyntheticCocoDataset``, ``TransferClsDataset``, and then the evaluator of
that split) and non-local paths (``s3://``, ``backend_args``) are skipped.
"""
import os.path as osp

from ..utils.errors import UserError

README_COCO = ("README's section 'The paper's setting on COCO' (COCO 2017 under data/coco/: "
               'annotations/instances_{train,val}2017.json, train2017/, val2017/)')
README_VTAB = ('docs/classification.md (one folder per task under '
               'data/vtab-1k/: <task>/train800val200.txt, <task>/test.txt, <task>/images/)')


class DataNotFoundError(UserError, FileNotFoundError):
    """Files a config's datasets or evaluators need are missing."""


def _is_local(path):
    return isinstance(path, str) and bool(path) and '://' not in path


def _join(root, path):
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _makes_its_data(ds):
    """True for a dataset type that generates its data (class attribute ``MAKES_ITS_DATA``)."""
    from ..registry import DATASETS
    kind = ds.get('type')
    try:
        cls = kind if isinstance(kind, type) else DATASETS.get(str(kind)) if kind else None
    except Exception:  # not registered (yet): mmengine will report it when building
        return False
    return isinstance(cls, type) and bool(getattr(cls, 'MAKES_ITS_DATA', False))


def _dataset_paths(ds):
    """[(path, is_dir)] a dataset config reads, through wrappers (dataset / datasets)."""
    if not isinstance(ds, dict):
        return []
    if 'datasets' in ds:
        return [p for d in ds['datasets'] for p in _dataset_paths(d)]
    if isinstance(ds.get('dataset'), dict):
        return _dataset_paths(ds['dataset'])
    if _makes_its_data(ds) or ds.get('backend_args'):
        return []
    root = ds.get('data_root') or ''
    out = []
    if _is_local(ds.get('ann_file')):
        out.append((_join(root, ds['ann_file']), False))
    prefixes = ds.get('data_prefix') or {}  # mmdet: dict(img=...); mmpretrain: a folder too
    for prefix in prefixes.values() if isinstance(prefixes, dict) else [prefixes]:
        if _is_local(prefix):
            out.append((_join(root, prefix), True))
    if not out and _is_local(root):  # a list file's paths are relative to the data root
        out.append((root, True))
    return out


def _self_making(ds):
    """True when a dataset config (or one inside its wrappers) writes its own data."""
    if not isinstance(ds, dict):
        return False
    inner = list(ds.get('datasets') or []) + [ds.get('dataset')]
    return _makes_its_data(ds) or any(_self_making(d) for d in inner)


def _evaluator_paths(ev):
    evs = ev if isinstance(ev, (list, tuple)) else [ev]
    return [(e['ann_file'], False) for e in evs
            if isinstance(e, dict) and _is_local(e.get('ann_file')) and not e.get('backend_args')]


def missing_data(cfg, stages):
    """The paths ``cfg``'s ``stages`` ('train', 'val', 'test') need that are not there."""
    needed = []
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        if loader is None or (stage == 'val' and cfg.get('val_cfg') is None):
            continue
        needed += _dataset_paths(loader.get('dataset'))
        if stage != 'train' and not _self_making(loader.get('dataset')):
            needed += _evaluator_paths(cfg.get(f'{stage}_evaluator'))
    missing = []
    for path, is_dir in needed:
        shown = path.rstrip('/') + ('/' if is_dir else '')
        if not (osp.isdir(path) if is_dir else osp.isfile(path)) and shown not in missing:
            missing.append(shown)
    return missing


def check_data(cfg, stages, config=None):
    """Raise DataNotFoundError naming the missing files of ``stages`` (see the module doc)."""
    missing = missing_data(cfg, stages)
    if missing:
        name = config or getattr(cfg, 'filename', None) or 'the config'
        raise DataNotFoundError(
            f'{name} expects data that is not there (relative to {osp.abspath(".")}): '
            f'{", ".join(missing)}; put the dataset there as {_layout(cfg)} describes, or '
            'run from the folder that holds it')


def check_load_from(cfg, config=None):
    """Raise DataNotFoundError when ``cfg.load_from`` is a local file that is not there (a
    model-zoo detector a ``LieRADetector`` config adapts, not yet downloaded); a URL is left to
    mmengine's download, a resumed run does not read it, and a hook whose class names the
    argument of the file it makes in ``makes_file`` (``PretrainBackboneHook``, the embedded
    whole-detector configs) makes it before the runner loads it."""
    path = cfg.get('load_from')
    if not _is_local(path) or osp.isfile(path) or cfg.get('resume') is True:
        return
    if any(_made_by(h, path) for h in cfg.get('custom_hooks') or []):
        return
    name = config or getattr(cfg, 'filename', None) or 'the config'
    hint = cfg.get('load_from_url')
    raise DataNotFoundError(
        f'{name} starts from the checkpoint load_from={path}, which is not there (relative to '
        f'{osp.abspath(".")}); ' +
        (f'download it from {hint} to that path, or ' if hint else 'put it there, or ') +
        'pass --cfg-options load_from=<path or URL of the checkpoint>')


def _made_by(hook, path):
    """Does the custom hook config ``hook`` make the file ``path`` before the run?"""
    if not isinstance(hook, dict):
        return False
    cls = hook.get('type')
    if isinstance(cls, str):
        from ..registry import HOOKS
        cls = HOOKS.get(cls)
    arg = getattr(cls, 'makes_file', None)
    return bool(arg) and _is_local(hook.get(arg)) and osp.abspath(hook[arg]) == osp.abspath(path)


def _layout(cfg):
    """README's data layout for the config's kind: classification (mmpretrain) or COCO."""
    return README_VTAB if cfg.get('default_scope') == 'mmpretrain' else README_COCO
