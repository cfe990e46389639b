"""Files made by mmliera before the layout change still load and give the same outputs.

tests/fixtures/legacy/ (see its README.md): an adapter ``.safetensors``, a training checkpoint
and an exported plain model of a tiny LieRAConvNeXt Mask R-CNN, made by commit 12649e8, with
the outputs the old code gave for each.
"""
import os
import sys

import pytest
import torch
from helpers import ROOT
from mmengine.runner import load_checkpoint

LEGACY = os.path.join(ROOT, 'tests', 'fixtures', 'legacy')
CONFIG = os.path.join(LEGACY, 'tiny_liera_maskrcnn.py')
sys.path.insert(0, LEGACY)
from outputs import fixture_outputs  # noqa: E402


@pytest.fixture(autouse=True)
def _fixture_dir(monkeypatch):
    monkeypatch.setenv('MMLIERA_FIXTURE_DIR', LEGACY + '/')


@pytest.fixture(scope='module')
def expected():
    return torch.load(os.path.join(LEGACY, 'expected.pth'), weights_only=True)


def _assert_same(got, want):
    """Equal up to float32 rounding: another CPU sums in another order (AMD vs Intel kernels
    differ by ~5e-7 of a tensor's largest value), so the tolerance scales with that value; a
    file loaded wrongly moves the outputs by a large fraction of it."""
    assert set(got) == set(want)
    for k in want:
        scale = want[k].abs().max().item()
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5 * scale, msg=k)


def _model():
    from mmliera.apis import build_model_from_config
    return build_model_from_config(CONFIG)


def test_adapter_file_loads_with_the_old_outputs(expected):
    from mmliera.checkpoint import load_weights
    _, model = _model()
    assert load_weights(model, os.path.join(LEGACY, 'adapters.safetensors'))[0] == 'adapters'
    _assert_same(fixture_outputs(model), expected['adapters'])


def test_training_checkpoint_loads_and_resumes_its_record(expected):
    from mmliera.checkpoint import checkpoint_problem, load_weights, mmengine_safe_globals
    path = os.path.join(LEGACY, 'train_iter_2.pth')
    assert checkpoint_problem(path) is None  # --resume would take it
    _, model = _model()
    with mmengine_safe_globals():  # mmengine's own loader, as Runner.load_checkpoint
        load_checkpoint(model, path, map_location='cpu', strict=True)
    _assert_same(fixture_outputs(model), expected['train_checkpoint'])
    _, model = _model()
    load_weights(model, path)
    _assert_same(fixture_outputs(model), expected['train_checkpoint'])


def test_exported_model_loads_into_plain_mmdet(expected):
    from mmdet.registry import MODELS

    from mmliera.checkpoint import plain_config, safe_load
    cfg, _ = _model()
    plain = plain_config(cfg)
    model = MODELS.build(plain.model)
    assert not any('lora_' in k for k in model.state_dict())
    state = safe_load(os.path.join(LEGACY, 'exported_model.pth'))['state_dict']
    model.load_state_dict(state, strict=True)
    _assert_same(fixture_outputs(model), expected['exported'])


def test_the_adapters_matter_for_these_outputs(expected):
    """Guard: the comparison above could not pass with the adapters ignored."""
    from mmliera import adapter_layers
    from mmliera.checkpoint import load_weights
    _, model = _model()
    load_weights(model, os.path.join(LEGACY, 'train_iter_2.pth'))
    for layer in adapter_layers(model).values():
        torch.nn.init.zeros_(layer.lora_B)
    got = fixture_outputs(model)['feat0']
    assert (got - expected['train_checkpoint']['feat0']).abs().max() > 1e-3


def test_plain_torch_load_reads_the_training_checkpoint_after_scoped_loads():
    """``import mmliera`` registers the allow-list process-wide (mmdet's init_detector and
    mmengine use plain torch.load); a scoped load must not take it away again (torch's own
    ``safe_globals`` context removes its globals on exit)."""
    from mmliera.checkpoint import mmengine_safe_globals, safe_load
    path = os.path.join(LEGACY, 'train_iter_2.pth')
    with mmengine_safe_globals():
        safe_load(path)
    assert 'message_hub' in torch.load(path, weights_only=True)
