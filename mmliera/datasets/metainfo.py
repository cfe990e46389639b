"""The class names and palette a config's test dataset would have, without building it."""
import copy

from ..registry import DATASETS


def config_dataset_meta(cfg) -> dict:
    """{'classes': ..., 'palette': ...} (lower-case keys) of the config's test dataset: its
    class's ``METAINFO`` updated by the config's ``metainfo``; wrappers are looked through."""
    ds = cfg.test_dataloader.dataset
    while 'dataset' in ds:  # wrappers
        ds = ds.dataset
    meta = copy.deepcopy(dict(getattr(DATASETS.get(ds.type), 'METAINFO', None) or {}))
    meta.update(copy.deepcopy(dict(ds.get('metainfo') or {})))
    return {k.lower(): v for k, v in meta.items()}
