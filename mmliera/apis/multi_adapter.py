"""Several task adapters on one base detector, served in one process.

    inferencer = MultiAdapterInferencer(
        'configs/demo/whole_liera_shapes.py',
        dict(shapes='shapes.safetensors', discs='discs.safetensors'))
    inferencer.set_adapter('discs')
    inferencer('image.jpg')                     # mmdet's DetInferencer call, task 'discs'
    predict_adapters(inferencer, images, 'work_dirs/serve')   # OUT_DIR/NAME/ per adapter

The base detector (the config's model with its base weights: the pretrained backbone and
``load_from``) is built and held once; each adapter file adds only its tensors
(:class:`~mmliera.checkpoint.AdapterBank`). A switch also swaps the task's class names (the
file's, else its config's) for the predictions and pictures.
"""
import contextlib
import os.path as osp
from typing import Dict, Optional

from ..checkpoint import AdapterBank
from ..checkpoint.load import load_base_weights
from ..datasets.metainfo import config_dataset_meta
from ..registry import MODELS
from .inference import LieRAInferencer, predict


class MultiAdapterInferencer(LieRAInferencer):
    """mmdet's DetInferencer on one base model with named adapters (module docstring).

    Args:
        model (str | Config): the base config (any of the adapters' training configs: they
            share it, only the classes may differ).
        adapters (dict): {name: adapter .safetensors}, loaded in this order; the first is
            active.
        device (str, optional): e.g. ``'cpu'``, ``'cuda:0'``.
        merge (str, optional): how a switch applies the adapter (:class:`AdapterBank`:
            None, 'copy', 'inplace').
        palette (str): as DetInferencer (``'none'``: each task's dataset palette, else random).
    """

    def __init__(self,
                 model,
                 adapters: Dict[str, str],
                 device=None,
                 merge=None,
                 palette='none',
                 show_progress=False):
        super().__init__(
            model, weights=None, device=device, palette=palette, show_progress=show_progress)
        # (after DetInferencer's own set-up, which may replace modules: revert_sync_batchnorm)
        self.bank = AdapterBank(self.model, config=self.cfg, merge=merge)
        for name, path in adapters.items():
            self.load_adapter(name, path)
        if self.bank.names:
            self.set_adapter(self.bank.names[0])

    def _init_model(self, cfg, weights, device='cpu'):
        cfg.model.pop('pretrained', None)
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        load_base_weights(model, cfg.get('load_from'))
        model.to(device)
        model.eval()
        meta = config_dataset_meta(cfg)
        model.dataset_meta = dict(
            classes=meta.get('classes'),
            palette=self.palette if self.palette != 'none' else meta.get('palette') or 'random')
        return model

    def _load_weights_to_model(self, model, checkpoint, cfg):  # (the base is loaded above)
        pass

    def _dataset_meta(self, name):
        from_config = config_dataset_meta(self.cfg)
        classes = self.bank.classes(name) if name else from_config.get('classes')
        if self.palette != 'none':
            palette = self.palette
        elif name and list(classes or ()) != list(from_config.get('classes') or ()):
            palette = 'random'  # (another task's classes: the config's colours do not fit)
        else:
            palette = from_config.get('palette') or 'random'
        return dict(classes=classes, palette=palette)

    @property
    def adapters(self):
        """The loaded adapters' names."""
        return self.bank.names

    @property
    def active_adapter(self) -> Optional[str]:
        return self.bank.active

    def load_adapter(self, name: str, path: str) -> None:
        """Load one more adapter file under ``name`` (checked against the base first)."""
        self.bank.load(name, path)

    def set_adapter(self, name: Optional[str]) -> None:
        """Predict with adapter ``name`` from now on (None: the base alone)."""
        self.bank.set(name)
        self.model.dataset_meta = self._dataset_meta(name)
        self.visualizer.dataset_meta = self.model.dataset_meta

    @contextlib.contextmanager
    def base_only(self):
        """Within the block, predictions come from the base alone."""
        previous = self.bank.active
        self.set_adapter(None)
        try:
            yield self
        finally:
            self.set_adapter(previous)


def predict_adapters(inferencer: MultiAdapterInferencer, images, out_dir, score_thr=0.3):
    """:func:`~.inference.predict` under each adapter: ``out_dir/NAME/vis/`` and
    ``out_dir/NAME/predictions.json``; returns {name: predictions}. The active adapter is
    active again afterwards."""
    previous, results = inferencer.active_adapter, {}
    try:
        for name in inferencer.adapters:
            inferencer.set_adapter(name)
            results[name] = predict(
                inferencer, images, osp.join(out_dir, name), score_thr, extra=dict(adapter=name))
    finally:
        inferencer.set_adapter(previous)
    return results
