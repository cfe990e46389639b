"""AdapterCheckpointHook: small, pickle-free adapter-only checkpoints beside mmengine's."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from ...checkpoint import save_adapter_checkpoint
from ...registry import HOOKS


@HOOKS.register_module()
class AdapterCheckpointHook(Hook):
    """Save ``adapters_{iter|epoch}_{n}.safetensors`` (and ``adapters_last``) in the work dir.

    Args:
        interval (int): every ``interval`` epochs (``by_epoch``) or iterations; -1: only at the
            end of training.
        by_epoch (bool): count epochs (True) or iterations.
        adapted_modules (tuple[str]): modules whose frozen weights are not saved.
    """

    priority = 'LOW'

    def __init__(self, interval=1, by_epoch=True, adapted_modules=('backbone', )):
        self.interval = interval
        self.by_epoch = by_epoch
        self.adapted_modules = tuple(adapted_modules)

    def _save(self, runner, name):
        if not is_main_process():
            return
        path = osp.join(runner.work_dir, f'{name}.safetensors')
        cfg = getattr(runner, 'cfg', None)
        loop = getattr(runner, '_train_loop', None)  # (built once training runs)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        save_adapter_checkpoint(
            runner.model,
            path,
            config=cfg.pretty_text if cfg is not None else None,
            adapted_modules=self.adapted_modules,
            extra_meta=dict(
                epoch=runner.epoch, iter=runner.iter, config_file=getattr(cfg, 'filename', None)),
            classes=classes)
        runner.logger.info(f'AdapterCheckpointHook: saved {path}')

    def after_train_epoch(self, runner):
        if self.by_epoch and self.interval > 0 and self.every_n_epochs(runner, self.interval):
            self._save(runner, f'adapters_epoch_{runner.epoch + 1}')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.by_epoch and self.interval > 0 and self.every_n_train_iters(
                runner, self.interval):
            self._save(runner, f'adapters_iter_{runner.iter + 1}')

    def after_train(self, runner):
        self._save(runner, 'adapters_last')
