"""compile_parts: no graph breaks in adapted parts, compiled = eager (measured against float64),
in place (same module, same state_dict), copies run uncompiled, and one clear error per bad
setting."""
import copy
import pickle

import pytest
import torch
import torch.nn as nn

from mmliera import LieRAConv2d, LieRALinear
from mmliera.models import CompileSettingError, compile_parts, compiled_parts, uncompile_parts
from mmliera.models.backbones import LieRAConvNeXt
from mmliera.models.peft import LieRALayer

# every adapter variant: the three modes, DoRA, PiSSA, dropout; each with the memory-lean op
# (factors train, W frozen: the default) and without it
VARIANTS = {
    'taylor': dict(mode='taylor'),
    'exp': dict(mode='exp'),
    'lora': dict(mode='lora'),
    'dora': dict(mode='taylor', dora=True),
    'pissa': dict(mode='taylor', init='pissa'),
    'dropout': dict(mode='exp', dropout=0.1),
}
TINY_ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])


class Adapted(nn.Module):
    """A 3x3 conv, a depthwise 7x7 conv and a linear, every one adapted (ConvNeXt's layer kinds)."""

    def __init__(self, lean=True, dtype=torch.float32, **adapter):
        super().__init__()
        torch.manual_seed(0)
        self.conv = LieRAConv2d(4, 8, 3, padding=1, rank=2, **adapter)
        self.dw = LieRAConv2d(8, 8, 7, padding=3, groups=8, rank=2, **adapter)
        self.fc = LieRALinear(8, 6, rank=2, **adapter)
        for n, p in self.named_parameters():
            p.requires_grad_('lora_' in n)
            if n.endswith('lora_B'):  # a trained-looking adapter, not B = 0
                nn.init.normal_(p, std=0.2)
        for layer in self.modules():
            if isinstance(layer, LieRALayer):
                layer.lean_backward = lean
        self.to(dtype)

    def forward(self, x):
        y = torch.nn.functional.gelu(self.dw(self.conv(x)))
        return self.fc(y.mean((2, 3)))


def tiny_backbone(**adapter):
    torch.manual_seed(0)
    m = LieRAConvNeXt(
        arch=TINY_ARCH,
        use_grn=True,
        layer_scale_init_value=0.,
        out_indices=[0, 1, 2, 3],
        gap_before_final_norm=False,
        adapter=dict(rank=2, **adapter))
    for n, p in m.named_parameters():
        p.requires_grad_('lora_' in n)
    return m


def graph_breaks(module, x):
    torch._dynamo.reset()
    found = torch._dynamo.explain(module)(x)
    return found.graph_break_count, [str(r.reason) for r in found.break_reasons]


@pytest.mark.parametrize('lean', [True, False], ids=['lean', 'plain'])
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_adapted_layers_compile_without_graph_breaks(variant, lean):
    m = Adapted(lean, **VARIANTS[variant])
    x = torch.randn(2, 4, 12, 12)
    for train in (True, False):
        m.train(train)
        with torch.set_grad_enabled(train):
            count, reasons = graph_breaks(m, x)
        assert count == 0, (variant, lean, train, reasons)
    for layer in m.modules():  # merged layers (inference) too
        if isinstance(layer, LieRALayer) and not layer.dora:
            layer.merge(keep_original=False)
    with torch.no_grad():
        assert graph_breaks(m, x)[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['taylor', 'exp', 'lora', 'dora', 'pissa'])
def test_adapted_convnext_backbone_has_no_graph_breaks(variant):
    m = tiny_backbone(**VARIANTS[variant])
    m.train()
    assert graph_breaks(m, torch.randn(1, 3, 64, 64)) == (0, [])


def _step(module, x):
    """Outputs and factor gradients of loss = sum of squared outputs, in float64."""
    module.zero_grad(set_to_none=True)
    out = module(x)
    out.pow(2).sum().backward()
    grads = {n: p.grad.double() for n, p in module.named_parameters() if p.grad is not None}
    return out.detach().double(), grads


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def _compare_to_float64(variant, backend):
    """(error of eager float32, error of compiled float32) against float64, per tensor."""
    x = torch.randn(2, 4, 12, 12, generator=torch.Generator().manual_seed(1))
    ref = _step(Adapted(dtype=torch.float64, **VARIANTS[variant]), x.double())
    eager = _step(Adapted(**VARIANTS[variant]), x)
    m = Adapted(**VARIANTS[variant])
    compile_parts(m, ['conv', 'dw', 'fc'], backend=backend)
    torch._dynamo.reset()
    compiled = _step(m, x)
    assert set(compiled[1]) == set(ref[1]) and len(ref[1]) >= 6
    rows = [('output', _rel(eager[0], ref[0]), _rel(compiled[0], ref[0]))]
    rows += [(n, _rel(eager[1][n], g), _rel(compiled[1][n], g)) for n, g in ref[1].items()]
    return rows


def _assert_as_close_as_eager(rows):
    # compiled float32 may round differently from eager float32, not be further from float64:
    # within twice eager's own distance (and a few float32 ulp for tensors eager gets exactly)
    for name, eager_err, compiled_err in rows:
        assert compiled_err <= max(2 * eager_err, 1e-6), (name, eager_err, compiled_err)


@pytest.mark.parametrize('variant', ['taylor', 'exp', 'lora', 'dora', 'pissa'])
def test_compiled_graph_equals_eager_against_float64(variant):
    """Dynamo + AOTAutograd's traced forward and backward (the lean op's custom backward
    included), run by eager kernels: the graphs inductor compiles."""
    _assert_as_close_as_eager(_compare_to_float64(variant, 'aot_eager'))


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['taylor', 'exp', 'lora'])
def test_inductor_equals_eager_against_float64(variant):
    """The three modes through inductor's generated code (DoRA and PiSSA add ops inductor
    compiles the same way; their graphs are checked above)."""
    _assert_as_close_as_eager(_compare_to_float64(variant, 'inductor'))


def test_compiled_in_place_keeps_module_state_and_copies_run_uncompiled():
    m = Adapted()
    keys, params = list(m.state_dict()), [id(p) for p in m.parameters()]
    x = torch.randn(2, 4, 12, 12)
    eager = m(x)
    found = compile_parts(m, 'dw', backend='aot_eager')
    assert found == {'dw': m.dw} and compiled_parts(m) == ['dw']
    assert list(m.state_dict()) == keys and [id(p) for p in m.parameters()] == params
    torch.testing.assert_close(m(x), eager)
    # a copy (EMA hooks make one) and a pickle run their own weights, uncompiled: a compiled
    # copy would call the original's forward
    twin = copy.deepcopy(m)
    clone = pickle.loads(pickle.dumps(m))
    assert compiled_parts(twin) == [] and compiled_parts(clone) == []
    with torch.no_grad():
        twin.dw.weight.mul_(2)
    assert not torch.allclose(twin(x), m(x))
    torch.testing.assert_close(clone(x), m(x))
    assert uncompile_parts(m) == ['dw'] and compiled_parts(m) == []


def test_merge_and_unmerge_of_a_compiled_model_follow_eager():
    from mmliera import merge_adapters, unmerge_adapters
    x = torch.randn(2, 4, 12, 12)
    eager, compiled = Adapted(), Adapted()
    compile_parts(compiled, [''], backend='aot_eager')
    torch._dynamo.reset()
    with torch.no_grad():
        for change in (None, merge_adapters, unmerge_adapters):  # the layers' state is guarded
            if change is not None:
                change(eager)
                change(compiled)
            torch.testing.assert_close(compiled(x), eager(x), rtol=0, atol=0)
        assert eager.conv.merged is False and compiled.conv.merged is False


def test_bad_settings_are_one_clear_error():
    m = Adapted()
    with pytest.raises(
            CompileSettingError, match=r"no submodule 'neck'; its parts are conv, dw, "
            'fc'):
        compile_parts(m, ['conv', 'neck'])
    with pytest.raises(CompileSettingError, match="'conv.lora_A'|no submodule"):
        compile_parts(m, ['conv.lora_A'])
    with pytest.raises(CompileSettingError, match="'dw' lies inside the model"):
        compile_parts(m, ['', 'dw'])
    with pytest.raises(CompileSettingError, match='parts is empty'):
        compile_parts(m, [])
    with pytest.raises(
            CompileSettingError,
            match=r"takes no 'fullgrahp'; its settings are "
            r'fullgraph, dynamic, backend'):
        compile_parts(m, ['dw'], fullgrahp=True)
    with pytest.raises(
            CompileSettingError,
            match=r"unknown torch.compile backend 'inducter'; "
            r'this torch has .*inductor'):
        compile_parts(m, ['dw'], backend='inducter')
    assert compiled_parts(m) == []  # nothing half-done
