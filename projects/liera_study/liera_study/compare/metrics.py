"""The figures a comparison reads from its runs, found from the configs' test evaluator.

* mmdet's ``CocoMetric`` (``metric=['bbox', 'segm']``): ``bbox_mAP`` / ``segm_mAP`` from the
  logged ``coco/bbox_mAP`` / ``coco/segm_mAP`` (0-1);
* mmpretrain's ``Accuracy`` (``topk=(1, 5)``): ``top1`` / ``top5`` from ``accuracy/top1`` /
  ``accuracy/top5`` (percent).

The first figure is the primary one: the grid's selection on val, the curves, the paired
differences' plot and the parameter plot use it; tables show every figure.
"""
from typing import NamedTuple, Sequence, Tuple

from .errors import ComparisonError


class Metric(NamedTuple):
    key: str  # name in the run records: 'bbox_mAP', 'top1'
    log_key: str  # the scalar mmengine logs: 'coco/bbox_mAP', 'accuracy/top1'
    label: str  # for tables and axes
    fmt: str  # number format


def _coco(kind):
    return Metric(f'{kind}_mAP', f'coco/{kind}_mAP', f'{kind} mAP', '.3f')


def _top(k):
    return Metric(f'top{k}', f'accuracy/top{k}', f'top-{k} accuracy (%)', '.2f')


DETECTION = (_coco('bbox'), _coco('segm'))


def by_key(keys: Sequence[str]) -> Tuple[Metric, ...]:
    """The metrics named ``keys`` (a results file's ``meta.metrics``)."""
    out = []
    for key in keys:
        if key.endswith('_mAP'):
            out.append(_coco(key[:-4]))
        elif key.startswith('top') and key[3:].isdigit():
            out.append(_top(int(key[3:])))
        else:
            raise ComparisonError(f'unknown metric {key!r} in the results file')
    return tuple(out)


def of_results(results) -> Tuple[Metric, ...]:
    """A results file's metrics (files written before metrics were recorded: detection)."""
    keys = (results.get('meta') or {}).get('metrics')
    return by_key(keys) if keys else DETECTION


def _evaluators(ev):
    if isinstance(ev, dict):
        return [ev]
    return [e for e in (ev or []) if isinstance(e, dict)]


def of_config(cfg, where='') -> Tuple[Metric, ...]:
    """The metrics of a config's test evaluator (its val evaluator must log the first)."""
    found = []
    for ev in _evaluators(cfg.get('test_evaluator')):
        kind = str(ev.get('type', '')).split('.')[-1]
        if kind == 'CocoMetric':
            kinds = ev.get('metric', 'bbox')
            kinds = [kinds] if isinstance(kinds, str) else list(kinds)
            found += [_coco(k) for k in ('bbox', 'segm') if k in kinds]
        elif kind == 'Accuracy':
            topk = ev.get('topk', (1, ))
            found += [_top(int(k)) for k in ((topk, ) if isinstance(topk, int) else topk)]
    if not found:
        kinds = ', '.join(str(e.get('type')) for e in _evaluators(cfg.get('test_evaluator')))
        raise ComparisonError(
            f'{where or "the config"}: the comparison reads mmdet\'s CocoMetric (bbox / segm '
            f'mAP) or mmpretrain\'s Accuracy (top-k); its test_evaluator is '
            f'{kinds or "missing"}; set test_evaluator to one of them')
    return tuple(found)
