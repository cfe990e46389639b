"""LieRAFreezeHook + LieRARunner: policy, table, loud failure (single process)."""
import os
import time
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import free_port
from mmdet.registry import MODELS
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmliera import FreezePolicy, LieRAFreezeHook, LieRARunner
from mmliera.models.param_report import format_table, parameter_table


class ToyDetector(BaseModel):
    """LieRAConvNeXt-atto backbone + a 'neck' and a 'head', classification loss."""

    def __init__(self):
        super().__init__()
        self.backbone = MODELS.build(
            dict(
                type='LieRAConvNeXt',
                arch='atto',
                use_grn=True,
                layer_scale_init_value=0.,
                out_indices=[3],
                adapter=dict(rank=2)))
        self.neck = nn.Linear(320, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.head(F.relu(self.neck(self.backbone(inputs)[0])))
        return {'loss': F.cross_entropy(out, labels)} if mode == 'loss' else out


class ToyData(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 32, 32, generator=g), labels=torch.tensor(i % 3))


class SnapshotHook(Hook):
    """Records the parameters when training starts (after init_weights)."""
    priority = 'LOWEST'

    def before_train(self, runner):
        runner.start_params = snapshot(runner.model)


def make_runner(tmp_path,
                runner_cls=LieRARunner,
                hook=None,
                iters=2,
                extra_hooks=(),
                optim_wrapper=None):
    torch.manual_seed(0)
    return runner_cls(
        model=ToyDetector(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        optim_wrapper=optim_wrapper or dict(optimizer=dict(type='AdamW', lr=1e-2)),
        custom_hooks=[
            hook if hook is not None else dict(type='LieRAFreezeHook'),
            SnapshotHook(), *extra_hooks
        ],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=-1)),
        default_scope='mmdet',
        # a name of its own: mmengine's default (the second it starts) would hand a runner made
        # in the same second as another one that runner's logger and log file
        experiment_name=f'toy_{time.time_ns()}')


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def log_text(tmp_path):
    logs = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs if f.endswith('.log')]
    return ''.join(open(p).read() for p in logs)


def test_default_policy_trains_adapters_neck_head(tmp_path):
    runner = make_runner(tmp_path)
    runner.train()
    before = runner.start_params
    after = snapshot(runner.model)
    for n in before:
        changed = not torch.equal(before[n], after[n])
        if n.startswith('backbone.') and not n.endswith(('lora_A', 'lora_B')):
            assert not changed, f'{n} is frozen but changed'
    assert not torch.equal(before['backbone.stages.3.1.pointwise_conv2.lora_B'],
                           after['backbone.stages.3.1.pointwise_conv2.lora_B'])
    assert not torch.equal(before['neck.weight'], after['neck.weight'])
    assert not torch.equal(before['head.weight'], after['head.weight'])
    # the optimizer keeps state only for trainable parameters
    opt = runner.optim_wrapper.optimizer
    trainable = {id(p) for p in runner.model.parameters() if p.requires_grad}
    assert {id(p) for p in opt.state} <= trainable and len(opt.state) == len(trainable)
    text = log_text(tmp_path)
    assert 'LieRA freezing policy in force' in text
    adapters = sum(p.numel() for n, p in runner.model.named_parameters()
                   if n.endswith(('lora_A', 'lora_B')))
    assert f'{adapters:,}' in text and 'backbone' in text and 'neck' in text


def test_patterns_add_and_remove_trainable_before_the_wrap(tmp_path):
    hook = dict(type='LieRAFreezeHook', trainable=[r'backbone\.norm3\..*'], frozen=[r'neck\..*'])
    runner = make_runner(tmp_path, hook=hook)
    assert not runner.model.neck.weight.requires_grad  # in force right after construction
    assert 'neck.weight' not in runner.liera_wrapped_trainable
    runner.train()
    before = runner.start_params
    after = snapshot(runner.model)
    assert torch.equal(before['neck.weight'], after['neck.weight'])
    assert not torch.equal(before['backbone.norm3.weight'], after['backbone.norm3.weight'])
    held = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']}
    assert id(runner.model.neck.weight) not in held


def test_loud_failure_when_the_optimizer_saw_what_the_policy_freezes(tmp_path):
    hook = dict(type='LieRAFreezeHook', frozen=[r'neck\..*'])
    runner = make_runner(tmp_path, runner_cls=Runner, hook=hook)  # plain Runner: too late
    with pytest.raises(RuntimeError) as e:
        runner.train()
    msg = str(e.value)
    assert 'policy freezes, requires_grad=True (2): neck.weight, neck.bias' in msg
    assert 'policy freezes, the optimizer holds it' in msg
    assert "runner_type='LieRARunner'" in msg


def test_loud_failure_when_ddp_registered_a_frozen_parameter():
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    try:
        model = ToyDetector()
        ddp = MMDistributedDataParallel(module=model, device_ids=None)
        model.neck.weight.requires_grad_(False)  # what a before_run hook would do: too late
        runner = types.SimpleNamespace(
            model=ddp, optim_wrapper=None, logger=types.SimpleNamespace(info=lambda *a: None))
        hook = LieRAFreezeHook(frozen=[r'neck\.weight'])
        # the policy agrees with requires_grad now, but DDP's reducer still expects the grad
        with pytest.raises(
                RuntimeError,
                match=r'DDP registered \d+ parameter tensors .* '
                r'\(frozen now: neck.weight, backbone'):
            hook.before_train(runner)
        # with LieRARunner's record of what DDP saw, the parameter is named exactly
        runner.liera_wrapped_trainable = {
            n
            for n, p in model.named_parameters()
        } - {n
             for n, p in model.named_parameters() if not p.requires_grad and n != 'neck.weight'}
        with pytest.raises(
                RuntimeError,
                match=r'policy freezes, DDP registered it for grads '
                r'\(1\): neck.weight'):
            hook.before_train(runner)
    finally:
        dist.destroy_process_group()


def test_policy_on_the_paper_detector():
    from helpers import atto_detector_cfg
    det = MODELS.build(atto_detector_cfg().model)
    wanted = FreezePolicy().resolve(det)
    for n, w in wanted.items():
        if n.startswith('backbone.'):
            assert w == n.endswith(('lora_A', 'lora_B')), n
        else:
            assert w, n
    pol = FreezePolicy(trainable=['bias'], frozen=[r'roi_head\.mask_head\..*'])
    wanted = pol.resolve(det)
    assert wanted['backbone.stages.0.0.depthwise_conv.bias']
    assert not wanted['roi_head.mask_head.conv_logits.weight']
    assert not wanted['roi_head.mask_head.conv_logits.bias']  # frozen wins
    with pytest.raises(ValueError, match="frozen pattern 'nek' matches no parameter"):
        FreezePolicy(frozen=['nek']).apply(det)


def test_parameter_table_counts():
    det = ToyDetector()
    rows = {r[0]: r[1:] for r in parameter_table(det)}
    adapters = sum(p.numel() for n, p in det.named_parameters() if 'lora_' in n)
    assert rows['backbone'] == (adapters, sum(p.numel()
                                              for p in det.backbone.parameters()) - adapters,
                                adapters, 'adapted')
    assert rows['neck'] == (320 * 16 + 16, 0, 0, 'trained fully')
    assert rows['total'][0] == sum(p.numel() for p in det.parameters() if p.requires_grad)
    text = format_table(parameter_table(det))
    assert text.splitlines()[0].split() == ['module', 'trainable', 'frozen', 'adapter', 'role']
    det.neck.bias.requires_grad_(False)
    assert parameter_table(det)[1][4] == 'frozen + 5,120 trained fully'


PARAM_GROUPS = dict(
    optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'neck': dict(lr_mult=0.1),
        'lora_': dict(lr_mult=2.0, decay_mult=0.0)
    }))


def test_several_param_groups_keep_their_settings_without_frozen_params(tmp_path):
    runner = make_runner(tmp_path, optim_wrapper=PARAM_GROUPS)
    runner.train()
    groups = runner.optim_wrapper.optimizer.param_groups
    assert len(groups) > 3  # mmengine: one group per parameter with paramwise_cfg
    names = {id(p): n for n, p in runner.model.named_parameters()}
    held = [(names[id(p)], g) for g in groups for p in g['params']]
    trains = {n for n, p in runner.model.named_parameters() if p.requires_grad}
    assert {n for n, _ in held} == trains
    for n, g in held:
        if n.startswith('neck.'):
            assert g['lr'] == pytest.approx(1e-3) and g['weight_decay'] == 0.01
        elif 'lora_' in n:
            assert g['lr'] == pytest.approx(2e-2) and g['weight_decay'] == 0
    after = snapshot(runner.model)
    for n, p in runner.start_params.items():
        if n.startswith('backbone.') and 'lora_' not in n:
            assert torch.equal(p, after[n]), n


def test_hook_finds_a_frozen_param_in_any_group(tmp_path):
    hook = dict(type='LieRAFreezeHook', frozen=[r'head\..*'])
    runner = make_runner(tmp_path, runner_cls=Runner, hook=hook, optim_wrapper=PARAM_GROUPS)
    with pytest.raises(
            RuntimeError, match=r'policy freezes, the optimizer holds it \(\d+\): '
            r'.*head\.weight'):
        runner.train()


def test_adapter_checkpoint_hook_every_n_iterations(tmp_path):
    from mmliera import load_adapter_checkpoint
    hook = dict(type='AdapterCheckpointHook', interval=2, by_epoch=False)
    runner = make_runner(tmp_path, iters=5, extra_hooks=[hook])
    runner.train()
    saved = sorted(p.name for p in tmp_path.glob('*.safetensors'))
    assert saved == [
        'adapters_iter_2.safetensors', 'adapters_iter_4.safetensors', 'adapters_last.safetensors'
    ]
    fresh = make_runner(tmp_path / 'fresh').model
    trained = runner.model.state_dict()
    with torch.no_grad():  # the same frozen base weights (a pretrained init in real use)
        for k, v in fresh.backbone.state_dict().items():
            if 'lora_' not in k:
                v.copy_(trained['backbone.' + k])
    meta = load_adapter_checkpoint(fresh, str(tmp_path / 'adapters_last.safetensors'))
    assert '"iter": 5' in meta['extra']
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    load_adapter_checkpoint(fresh, str(tmp_path / 'adapters_iter_2.safetensors'))
    assert not torch.equal(fresh.head.weight, runner.model.head.weight)
