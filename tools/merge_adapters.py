"""Merge LieRA adapters into the weights and export a plain mmdet model (no mmliera needed).

    python tools/merge_adapters.py CONFIG CKPT OUT_DIR

CKPT is an mmengine checkpoint of a LieRA run (full state dict), or an adapter-only
``.safetensors`` checkpoint (then the base weights come from the config's pretrained init_cfg).
Writes OUT_DIR/model.pth (plain state dict, W' folded in) and OUT_DIR/config.py (backbone e.g.
``mmpretrain.ConvNeXt``); evaluate with mmdet's own tools/test.py:
``python tools/test.py OUT_DIR/config.py OUT_DIR/model.pth`` works without mmliera.
"""
import argparse

import mmliera  # noqa: F401  (environment check; registers mmliera in mmdet's registries)
from mmengine.config import DictAction


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='mmengine .pth checkpoint or adapter .safetensors')
    parser.add_argument('out_dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    from mmengine.runner import load_checkpoint

    from mmliera.checkpoint import load_adapter_checkpoint
    from mmliera.cli import build_model_from_config
    from mmliera.engine.safe_load import mmengine_safe_globals
    from mmliera.export import export_merged

    cfg, model = build_model_from_config(args.config, args.cfg_options)
    with mmengine_safe_globals():
        if args.checkpoint.endswith('.safetensors'):
            model.init_weights()  # the base (pretrained) weights
            load_adapter_checkpoint(model, args.checkpoint)
        else:
            load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    ckpt, config = export_merged(cfg, model, args.out_dir)
    print(f'wrote {ckpt}\nwrote {config}')


if __name__ == '__main__':
    main()
