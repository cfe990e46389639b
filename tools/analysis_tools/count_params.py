"""Print a config's LieRA adapter parameters by layer kind and trainable/frozen per module.

    python tools/analysis_tools/count_params.py configs/liera_maskrcnn_convnextv2.py [--cfg-options
    k=v ...]

The model is built as training would build it (no weights are loaded), with the freezing
policy of the config's LieRAFreezeHook applied.
"""
import argparse

from mmengine.config import DictAction

import mmliera  # noqa: F401  (environment check, registration)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.adapter.rank=32')
    parser.add_argument(
        '--sizes',
        action='store_true',
        help='also write an adapter-only checkpoint and a full state dict to a '
        'temporary folder and print their file sizes')
    args = parser.parse_args(argv)

    from mmliera.apis.model import build_model_from_config
    from mmliera.engine.hooks.freeze_hook import freeze_hooks_of
    from mmliera.models.param_report import (adapter_counts, format_counts, format_table,
                                             parameter_table)

    cfg, model = build_model_from_config(args.config, args.cfg_options)
    for hook in freeze_hooks_of(cfg.get('custom_hooks')):
        hook.policy.apply(model)

    print(f'config: {args.config}')
    parts = getattr(model, 'liera_adapter', None)  # type='LieRADetector': {part: settings}
    if parts is not None:
        print(f'{type(model).__name__} adapted whole (LieRADetector); new class layers: '
              f'{getattr(model, "liera_new_layers", [])}')
        for part, settings in parts.items():
            print(f'{part}: adapter {settings}')
    else:
        backbone = getattr(model, 'backbone', model)
        settings = getattr(backbone, 'liera_adapter', None)
        print(f'backbone: {type(backbone).__name__}' +
              (f', adapter: {settings}' if settings else ', no LieRA adapters'))
    print('\nLieRA adapter parameters by layer kind:')
    print(format_counts(adapter_counts(model)))
    print('\nParameters per module:')
    print(format_table(parameter_table(model)))
    if args.sizes:
        print_sizes(model)
    print(f'\nmmliera {mmliera.__version__}')


def print_sizes(model):
    """File sizes: adapter-only safetensors vs the full state dict (and + AdamW moments)."""
    import os
    import tempfile

    import torch

    from mmliera.checkpoint import save_adapter_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        adapter = os.path.join(tmp, 'adapters.safetensors')
        full = os.path.join(tmp, 'state_dict.pth')
        save_adapter_checkpoint(model, adapter)
        torch.save({'state_dict': model.state_dict()}, full)
        a, f = os.path.getsize(adapter), os.path.getsize(full)
    moments = 2 * 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    mb = 2**20
    print('\nCheckpoint sizes:')
    print(f'adapter-only (.safetensors)          {a / mb:9.1f} MB')
    print(f'full state dict (.pth)               {f / mb:9.1f} MB  ({f / a:.1f}x)')
    print(f'full + AdamW moments (mmengine ckpt) {(f + moments) / mb:9.1f} MB  '
          f'({(f + moments) / a:.1f}x)')


if __name__ == '__main__':
    from mmliera.cli import exit_on_user_error
    exit_on_user_error(main)()
