"""Merge LieRA adapters into the weights and export a plain mmdet model (no mmliera needed).

    python tools/model_converters/merge_adapters.py CONFIG CKPT OUT_DIR

CKPT is an mmengine checkpoint of a LieRA run (full state dict), or an adapter-only
``.safetensors`` checkpoint (then the base weights come from the config's pretrained init_cfg).
Writes OUT_DIR/model.pth (plain state dict, W' folded in) and OUT_DIR/config.py (backbone e.g.
``mmpretrain.ConvNeXt``); evaluate with mmdet's own tools/test.py:
``python tools/test.py OUT_DIR/config.py OUT_DIR/model.pth`` works without mmliera.
"""
import argparse

from mmengine.config import DictAction

import mmliera  # noqa: F401  (environment check; registers mmliera in mmdet's registries)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='mmengine .pth checkpoint or adapter .safetensors')
    parser.add_argument('out_dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    from mmliera.apis.model import build_model_from_config
    from mmliera.checkpoint import export_merged, load_weights, plain_config

    cfg, model = build_model_from_config(args.config, args.cfg_options)
    plain_config(cfg)  # a config that cannot be exported fails before any weight is read
    # must fit the config's model (one clear error); an adapter file reads its base weights
    load_weights(model, args.checkpoint, base=cfg.get('load_from'))
    ckpt, config = export_merged(cfg, model, args.out_dir)
    print(f'wrote {ckpt}\nwrote {config}')


if __name__ == '__main__':
    from mmliera.cli import exit_on_user_error
    exit_on_user_error(main)()
