"""Per-run diagnostics: how far training moved the backbone, stage by stage.

``relative change = ‖W' − W₀‖ / ‖W₀‖`` over every backbone tensor of a stage (conv / linear
weights, norms, biases; adapter factors excluded), where W₀ are the starting weights (the
config's pretrained ``init_cfg``) and W' the trained effective weights: the rebuilt weight of an
adapted layer (W ⊙ exp(ΔW), W + W ⊙ ΔW, W + ΔW, DoRA's m · direction), the parameter itself
elsewhere. Stages: ``stages.N`` / ``layers.N`` / ``layerN`` and the ``downsample_layers.N`` /
``normN`` beside them count as stage N; anything else is grouped by its first name part.
"""
import contextlib
import io
import re
from collections import OrderedDict

import torch

_LOGGER = 'mmliera-compare-diagnostics'
_STAGE = re.compile(r'^(?:stages|layers|downsample_layers|norm|layer|res_layers)\.?(\d+)')


def stage_of(name: str) -> str:
    m = _STAGE.match(name)
    return f'stage {m.group(1)}' if m else name.split('.', 1)[0]


@torch.no_grad()
def effective_weights(module: torch.nn.Module) -> 'OrderedDict[str, torch.Tensor]':
    """{name: effective tensor} of ``module``'s parameters (adapter factors left out)."""
    from mmliera.models.peft.inject import adapter_layers
    from mmliera.models.peft.names import is_adapter_factor
    out = OrderedDict(
        (n, p.detach().clone()) for n, p in module.named_parameters() if not is_adapter_factor(n))
    for name, layer in adapter_layers(module).items():
        out[f'{name}.weight'] = layer.merged_weight().detach().clone()
    return out


def relative_change(before, after) -> 'OrderedDict[str, float]':
    """{stage: ‖after − before‖ / ‖before‖} over the tensors of each stage."""
    num, den = OrderedDict(), OrderedDict()
    for name, w0 in before.items():
        stage = stage_of(name)
        w1 = after[name].double()
        num[stage] = num.get(stage, 0.0) + float((w1 - w0.double()).pow(2).sum())
        den[stage] = den.get(stage, 0.0) + float(w0.double().pow(2).sum())
    return OrderedDict((s, (num[s] / den[s])**0.5 if den[s] else 0.0) for s in num)


def backbone_change(config, options, checkpoint) -> 'OrderedDict[str, float]':
    """Relative change per backbone stage of a trained ``checkpoint`` against the config's
    starting weights."""
    from mmengine.logging import MMLogger

    from mmliera.apis.model import build_model_from_config
    from mmliera.checkpoint.load import load_base_weights, load_weights
    if not MMLogger.check_instance_created(_LOGGER):
        MMLogger.get_instance(_LOGGER, log_level='WARNING')  # the init's report stays quiet
    cfg, model = build_model_from_config(config, options)
    with contextlib.redirect_stdout(io.StringIO()):
        load_base_weights(model, cfg.get('load_from'))  # what training started from
    before = effective_weights(model.backbone)
    load_weights(model, checkpoint)
    return relative_change(before, effective_weights(model.backbone))
