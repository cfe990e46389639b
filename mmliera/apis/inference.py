"""Predictions on pictures through mmdet's ``DetInferencer``, from every weight file mmliera has.

``LieRAInferencer(config, checkpoint)`` is mmdet's DetInferencer whose weights are

- an mmengine checkpoint of a run (``work_dirs/<run>/iter_N.pth``) or any full state dict, e.g.
  the ``model.pth`` that ``tools/model_converters/merge_adapters.py`` writes (then with its
  ``config.py``): the
  file must fit the config's model (:mod:`mmliera.checkpoint.fit`), else one clear error;
- an adapter-only ``.safetensors`` (``AdapterCheckpointHook``): the base weights come from the
  config's pretrained ``init_cfg``, then the adapters, neck and heads from the file.

``predict(inferencer, images, out_dir, score_thr)`` writes one picture per image (mmdet's
``DetLocalVisualizer``: boxes, masks, class names, scores) to ``out_dir/vis/`` and all
predictions to ``out_dir/predictions.json`` (per image: boxes xyxy, scores, labels, class names,
masks as COCO RLE), keeping the instances with score >= ``score_thr``.
"""
import copy
import glob
import json
import os
import os.path as osp
import re

from mmdet.apis import DetInferencer
from mmdet.apis.det_inferencer import IMG_EXTENSIONS

from ..checkpoint import load_weights
from ..datasets.metainfo import config_dataset_meta
from ..registry import MODELS
from ..utils.errors import UserError


class InferenceInputError(UserError, FileNotFoundError):
    """No images (or no config) where the command line points."""


def _unreadable(path):
    """None when ``path`` decodes as an image (header and data checked), else why not."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # not an image, truncated, unknown format
        return f'{type(e).__name__}: {e}' if str(e) else type(e).__name__
    return None


def find_images(inputs):
    """Image files of ``inputs`` (files, folders, glob patterns), in order, each once."""
    found = []
    for item in inputs:
        if osp.isdir(item):
            files = sorted(
                osp.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMG_EXTENSIONS))
        elif osp.isfile(item):
            if not item.lower().endswith(IMG_EXTENSIONS):
                raise InferenceInputError(f'{item} is not an image (expected one of '
                                          f'{", ".join(IMG_EXTENSIONS)})')
            files = [item]
        else:
            files = sorted(
                f for f in glob.glob(item, recursive=True)
                if osp.isfile(f) and f.lower().endswith(IMG_EXTENSIONS))
        if not files:
            raise InferenceInputError(
                f'no images found for {item!r}: give image files, a folder of images '
                f'({", ".join(IMG_EXTENSIONS)}) or a quoted glob such as "data/*.jpg"')
        found += [f for f in files if f not in found]
    for f in found:
        problem = _unreadable(f)
        if problem:
            raise InferenceInputError(f'{f} cannot be read as an image ({problem}); pass image '
                                      'files (a folder of them, or a quoted glob)')
    names = [osp.basename(f) for f in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InferenceInputError(f'several inputs are named {twice[:3]}: their pictures '
                                  'would overwrite each other; run them separately')
    return found


class LieRAInferencer(DetInferencer):
    """mmdet's DetInferencer for mmliera's weight files (see the module docstring).

    Args:
        model (str | Config): config file (or loaded config).
        weights (str): ``.pth`` checkpoint / state dict, or adapter ``.safetensors``.
        device (str, optional): e.g. ``'cpu'``, ``'cuda:0'`` (default: CUDA when available).
        palette (str): as DetInferencer (``'none'``: the config's, then the checkpoint's).
    """

    def __init__(self, model, weights, device=None, palette='none', show_progress=False):
        if isinstance(model, str) and not osp.isfile(model):
            raise InferenceInputError(f'config {model} does not exist')
        super().__init__(
            model=model,
            weights=weights,
            device=device,
            palette=palette,
            show_progress=show_progress)

    def _init_model(self, cfg, weights, device='cpu'):
        cfg.model.pop('pretrained', None)
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        kind, meta = load_weights(model, weights, base=cfg.get('load_from'))
        meta = {} if kind == 'adapters' else meta.get('dataset_meta') or {}
        dataset_meta = {k.lower(): v for k, v in meta.items()}
        from_config = config_dataset_meta(cfg)
        dataset_meta.setdefault('classes', from_config.get('classes'))
        if self.palette != 'none':
            dataset_meta['palette'] = self.palette
        else:
            dataset_meta['palette'] = from_config.get('palette') or dataset_meta.get(
                'palette') or 'random'
        model.dataset_meta = dataset_meta
        model.to(device)
        model.eval()
        return model

    def _init_pipeline(self, cfg):
        """The test pipeline without annotation loading (pictures have none)."""
        cfg = copy.deepcopy(cfg)
        pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.test_dataloader.dataset.pipeline = [
            t for t in pipeline if str(t['type']).split('.')[-1] != 'LoadAnnotations'
        ]
        return super()._init_pipeline(cfg)


def _class_name(classes, label):
    return classes[label] if classes and 0 <= label < len(classes) else str(label)


def predict(inferencer, images, out_dir, score_thr=0.3, extra=None):
    """Run on ``images``; write ``out_dir/vis/<name>`` and ``out_dir/predictions.json``
    (``extra``: more top-level entries, e.g. the adapter's name).

    Returns the JSON's content (dict)."""
    samples = inferencer(
        images,
        out_dir=out_dir,
        pred_score_thr=score_thr,
        no_save_pred=True,
        return_datasamples=True)['predictions']
    classes = list(inferencer.model.dataset_meta.get('classes') or [])
    entries = []
    for img, sample in zip(images, samples):
        pred = inferencer.pred2dict(sample)
        keep = [i for i, s in enumerate(pred.get('scores', [])) if s >= score_thr]
        entry = dict(
            img_path=img,
            height=int(sample.ori_shape[0]),
            width=int(sample.ori_shape[1]),
            visualization=osp.join(out_dir, 'vis', osp.basename(img)))
        entry['bboxes'] = [[round(v, 2) for v in pred['bboxes'][i]] for i in keep]
        entry['scores'] = [round(pred['scores'][i], 4) for i in keep]
        entry['labels'] = [pred['labels'][i] for i in keep]
        if 'masks' in pred:
            entry['masks'] = [pred['masks'][i] for i in keep]
        entry['label_names'] = [_class_name(classes, label) for label in entry['labels']]
        entries.append(entry)
    result = dict(
        config=getattr(inferencer.cfg, 'filename', None),
        score_thr=score_thr,
        bbox_format='xyxy (pixels of the input image)',
        mask_format='COCO RLE',
        classes=classes,
        **(extra or {}),
        images=entries)
    os.makedirs(out_dir, exist_ok=True)
    text = json.dumps(result, indent=1)  # readable, with each list of numbers on one line
    text = re.sub(r'\[\s+([-+\d.,eE\s]+?)\s+\]', lambda m: f'[{" ".join(m[1].split())}]', text)
    with open(osp.join(out_dir, 'predictions.json'), 'w') as f:
        f.write(text + '\n')
    return result
