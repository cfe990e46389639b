"""What to run after a training run: pictures of its predictions and its training curves."""
import glob
import os
import os.path as osp

from ..checkpoint.resume import read_last_checkpoint

# the repository's tools/ folder (this file is mmliera/cli/next_steps.py)
TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')


def _short(path):
    """``path`` relative to the current folder when it lies below it."""
    rel = osp.relpath(osp.abspath(path))
    return path if rel.startswith('..') else rel


def _last_checkpoint(work_dir):
    path = read_last_checkpoint(work_dir)
    if path and osp.isfile(path):
        return path
    adapters = osp.join(work_dir, 'adapters_last.safetensors')
    return adapters if osp.isfile(adapters) else None


def _image_folder(cfg):
    """The val (or test) split's image folder when it is a plain local one, else None."""
    for stage in ('val', 'test'):
        ds = (cfg.get(f'{stage}_dataloader') or {}).get('dataset') or {}
        prefix = (ds.get('data_prefix') or {}).get('img')
        if isinstance(prefix, str) and '://' not in prefix:
            folder = osp.join(ds.get('data_root') or '', prefix)
            if osp.isdir(folder):
                return folder
    return None


def next_steps(cfg, config, work_dir):
    """Lines with the commands that make pictures and curves of the run in ``work_dir``."""
    tool = _short(TOOLS)
    lines = [f'Run finished; its work dir is {_short(work_dir)}. Next:']
    ckpt, images = _last_checkpoint(work_dir), _image_folder(cfg)
    if ckpt and images:
        out = osp.join(_short(work_dir), 'predictions')
        lines.append(f'  pictures of the predictions (boxes, masks, classes, scores) on the val '
                     f'images, in {out}/vis/ and {out}/predictions.json:\n'
                     f'    python {tool}/infer.py {config} {_short(ckpt)} {_short(images)} '
                     f'--out-dir {out}')
    if ckpt and not ckpt.endswith('.safetensors'):
        lines.append(f'  evaluate again, painting every val image (into '
                     f'{_short(work_dir)}/<timestamp>/show/):\n    python {tool}/test.py '
                     f'{config} {_short(ckpt)} --show-dir show')
    if glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        lines.append(
            f'  training curves (losses, mAP):\n    python {tool}/analysis_tools/plot_curves.py '
            f'{_short(work_dir)} --out {osp.join(_short(work_dir), "curves.png")}')
    return os.linesep.join(lines)
