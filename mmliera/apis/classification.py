"""Top-k classes on pictures through mmpretrain's ``ImageClassificationInferencer``, from every
weight file mmliera has (as :mod:`.inference` does for detectors).

``LieRAClassifierInferencer(config, checkpoint)``: the config's classifier built in its default
scope, its weights from a run's checkpoint, an exported ``model.pth`` or an adapter-only
``.safetensors`` (:func:`mmliera.checkpoint.load_weights`: all or nothing, one clear error).
``predict_topk(inferencer, images, out_dir, topk)`` writes one picture per image (mmpretrain's
``UniversalVisualizer``: the top class and its score) to ``out_dir/vis/<name>.png`` and the ``topk``
classes of every image (ids, names, scores, best first) to ``out_dir/predictions.json``.
"""
import json
import os
import os.path as osp

import torch
from mmpretrain.apis import ImageClassificationInferencer

from ..checkpoint import load_weights
from .inference import config_dataset_meta
from .model import build_model, load_config


class LieRAClassifierInferencer(ImageClassificationInferencer):
    """mmpretrain's ImageClassificationInferencer for mmliera's weight files.

    Args:
        config (str | Config): a classification config (``default_scope='mmpretrain'``).
        weights (str): ``.pth`` checkpoint / state dict, or adapter ``.safetensors``.
        device (str, optional): e.g. ``'cpu'``, ``'cuda:0'`` (default: CUDA when available).
    """

    def __init__(self, config, weights, device=None):
        cfg = load_config(config)
        cfg.model.pop('pretrained', None)
        model = build_model(cfg)
        kind, meta = load_weights(model, weights, base=cfg.get('load_from'))
        meta = {} if kind == 'adapters' else meta.get('dataset_meta') or {}
        classes = meta.get('classes') or config_dataset_meta(cfg).get('classes')
        model._config = cfg
        model._dataset_meta = dict(classes=list(classes) if classes else None)
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        super().__init__(
            model, pretrained=False, device=device, classes=model._dataset_meta['classes'])


def predict_topk(inferencer, images, out_dir, topk=5):
    """Run on ``images``; write ``out_dir/vis/<name>`` and ``out_dir/predictions.json`` (per
    image: the ``topk`` labels, class names and scores, best first). Returns the JSON's
    content (dict)."""
    os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
    results = inferencer(images, show_dir=osp.join(out_dir, 'vis'))
    classes = list(inferencer.classes or [])
    entries = []
    for img, res in zip(images, results):
        scores = torch.as_tensor(res['pred_scores'])
        k = min(topk, scores.numel())
        top = torch.topk(scores, k)
        labels = [int(i) for i in top.indices]
        entries.append(
            dict(
                img_path=img,
                visualization=osp.join(out_dir, 'vis',
                                       osp.splitext(osp.basename(img))[0] + '.png'),
                labels=labels,
                label_names=[classes[i] if i < len(classes) else str(i) for i in labels],
                scores=[round(float(s), 4) for s in top.values]))
    result = dict(
        config=getattr(inferencer.config, 'filename', None),
        topk=topk,
        classes=classes,
        images=entries)
    with open(osp.join(out_dir, 'predictions.json'), 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    return result
