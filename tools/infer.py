"""Pictures of a trained model's predictions (boxes, masks, class names, scores) plus a JSON.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] [--out-dir work_dirs/infer]
                          [--score-thr 0.3] [--topk 5] [--device cpu] [--cfg-options k=v ...]
    python tools/infer.py CONFIG --adapters NAME=FILE [NAME=FILE ...] INPUT [INPUT ...]
                          [--merge {none,copy,inplace}] [...]

With ``--adapters``, one process holds the config's base detector once and every adapter file
(adapter-only ``.safetensors`` trained from that base config; their classes may differ) and
writes ``OUT_DIR/NAME/vis/`` and ``OUT_DIR/NAME/predictions.json`` per adapter, each with its
own class names (docs/multi_adapter.md).

A classification config (``default_scope='mmpretrain'``) gives the ``--topk`` classes of each
image instead: ``OUT_DIR/predictions.json`` (per image: labels, class names, scores, best first)
and ``OUT_DIR/vis/<image name>.png`` (mmpretrain's UniversalVisualizer: the top class).

CHECKPOINT: an mmengine checkpoint of the run (``work_dirs/<run>/iter_N.pth``), an adapter-only
``.safetensors`` (base weights from the config's pretrained init_cfg), or the ``model.pth`` that
``tools/model_converters/merge_adapters.py`` writes (with the ``config.py`` written beside it).
INPUT: image
files, folders of images or quoted glob patterns. Writes ``OUT_DIR/vis/<image name>`` (mmdet's
DetLocalVisualizer) and ``OUT_DIR/predictions.json`` (per image: bboxes xyxy, scores, labels,
label_names, masks as COCO RLE; instances with score >= --score-thr).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# the checkout first on the path, as mmdet's dist_train.sh puts it on PYTHONPATH: configs under
# projects/ name their own code in custom_imports (e.g. projects.liera_study.liera_study)
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmliera  # noqa: E402,F401  (environment check; registers mmliera in mmdet's registries)
from mmliera.apis import LieRAInferencer, find_images, load_config, predict  # noqa: E402
from mmliera.apis.classification import LieRAClassifierInferencer, predict_topk  # noqa: E402
from mmliera.cli import exit_on_user_error  # noqa: E402
from mmliera.cli.errors import UsageError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config', help='config file (a run\'s, or tools/model_converters/merge_adapters.py\'s)')
    parser.add_argument(
        'inputs',
        nargs='*',
        metavar='CHECKPOINT INPUT',
        help='the .pth checkpoint / state dict or adapter .safetensors (left out with '
        '--adapters), then image files, folders or quoted globs')
    parser.add_argument(
        '--adapters',
        nargs='+',
        metavar='NAME=FILE',
        help='several adapter files on one base model, each under its name (OUT_DIR/NAME/); '
        'the inputs follow them')
    parser.add_argument(
        '--merge',
        default='none',
        choices=['none', 'copy', 'inplace'],
        help='with --adapters: fold each adapter into the weights when switching to it '
        '(copy: keeps W; inplace: no second copy of W, unmerged up to rounding); none: the '
        'layers apply the factors in each forward')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/infer',
        help='pictures go to OUT_DIR/vis/, predictions to '
        'OUT_DIR/predictions.json')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='draw and keep the instances scoring at least this')
    parser.add_argument(
        '--topk',
        type=int,
        default=5,
        help='classification configs: how many classes to list per image (best first)')
    parser.add_argument(
        '--device', default=None, help='e.g. cpu, cuda:0 (default: CUDA if '
        'available)')
    parser.add_argument(
        '--palette',
        default='none',
        choices=['none', 'coco', 'voc', 'citys', 'random'],
        help='colours (default: the dataset\'s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def split_adapters(args):
    """(adapters {name: file} or None, checkpoint or None, inputs) from the command line:
    argparse gives ``--adapters`` the inputs after the last NAME=FILE too."""
    if not args.adapters:
        if args.merge != 'none':
            raise UsageError(f'--merge {args.merge} applies to --adapters NAME=FILE ...; one '
                             'CHECKPOINT needs no switching')
        if len(args.inputs) < 2:
            raise UsageError('give a CHECKPOINT and at least one INPUT (image, folder or glob), '
                             'or --adapters NAME=FILE ... with the inputs')
        return None, args.inputs[0], args.inputs[1:]
    pairs, inputs = [], list(args.inputs)
    for i, item in enumerate(args.adapters):
        if '=' not in item:
            if not pairs:
                raise UsageError(f'--adapters {item}: give NAME=FILE pairs (e.g. '
                                 'shapes=work_dirs/shapes/adapters_last.safetensors)')
            inputs = args.adapters[i:] + inputs
            break
        pairs.append(item.split('=', 1))
    if not inputs:
        raise UsageError('give at least one INPUT (image, folder or glob) after the adapters')
    adapters = {}
    for name, path in pairs:
        if name in adapters:
            raise UsageError(f'--adapters: the name {name!r} is used twice ({adapters[name]} '
                             f'and {path}); names: {", ".join(adapters)}')
        if not path.endswith('.safetensors'):
            raise UsageError(f'--adapters {name}={path}: give adapter-only .safetensors files '
                             '(AdapterCheckpointHook writes adapters_last.safetensors)')
        adapters[name] = path
    return adapters, None, inputs


def _serve(args, config, adapters, images):
    from mmliera.apis import MultiAdapterInferencer, predict_adapters
    if config.get('default_scope') == 'mmpretrain':
        raise UsageError('--adapters serves detection configs; give a classification config '
                         'one CHECKPOINT')
    merge = None if args.merge == 'none' else args.merge
    inferencer = MultiAdapterInferencer(
        config, adapters, device=args.device, merge=merge, palette=args.palette)
    results = predict_adapters(inferencer, images, args.out_dir, args.score_thr)
    for name, result in results.items():
        count = sum(len(e['scores']) for e in result['images'])
        print(f'{name}: {len(images)} images, {count} instances with score >= '
              f'{args.score_thr} in {args.out_dir}/{name}/')


def _main(argv=None):
    args = parse_args(argv)
    adapters, checkpoint, inputs = split_adapters(args)
    images = find_images(inputs)
    config = load_config(args.config, args.cfg_options)
    if adapters:
        return _serve(args, config, adapters, images)
    args.checkpoint = checkpoint
    if config.get('default_scope') == 'mmpretrain':
        if args.topk < 1:
            raise UsageError(f'--topk {args.topk}: give 1 or more classes per image')
        inferencer = LieRAClassifierInferencer(config, args.checkpoint, device=args.device)
        predict_topk(inferencer, images, args.out_dir, args.topk)
        print(f'{len(images)} images: the top {args.topk} classes of each in '
              f'{args.out_dir}/predictions.json, pictures in {args.out_dir}/vis/')
        return
    inferencer = LieRAInferencer(config, args.checkpoint, device=args.device, palette=args.palette)
    result = predict(inferencer, images, args.out_dir, args.score_thr)
    count = sum(len(e['scores']) for e in result['images'])
    print(f'{len(images)} images, {count} instances with score >= {args.score_thr}: pictures '
          f'in {args.out_dir}/vis/, predictions in {args.out_dir}/predictions.json')


main = exit_on_user_error(_main)

if __name__ == '__main__':
    main()
