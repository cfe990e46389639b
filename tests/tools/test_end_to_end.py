"""Train / test / distributed / resume through the tools on the generated data (CPU)."""
import os.path as osp
import re

import pytest
import torch
from helpers import assert_adapters_trained, free_port, maps, run, runner_output, write_cfg
from tiny_demo import NO_VALIDATION

pytestmark = pytest.mark.slow  # training runs through tools/

# mAP floors for the short schedule of the demo_run fixture (conftest.py: pretrain 40 iters,
# LieRA 40 iters), measured on this machine (2026-12-02): bbox 0.167, segm 0.246 (pretrain 30,
# LieRA 30: 0.031, 0.101). A model that does not learn scores ~0.00.
BBOX_FLOOR, SEGM_FLOOR = 0.06, 0.12
# two evaluations of the same model that differ only in floating-point rounding
MAP_TOL = 0.005


def test_train_pretrains_adapts_and_evaluates(demo_run):
    out = demo_run['out']
    assert 'PretrainBackboneHook: no backbone checkpoint' in out
    assert osp.isfile(demo_run['pretrained'])
    ck = torch.load(demo_run['pretrained'], weights_only=True)
    assert set(ck) == {'meta', 'state_dict'}
    assert all(k.startswith('backbone.') for k in ck['state_dict'])
    assert 'LieRA freezing policy in force' in out
    assert 'Iter(train) [40/40]' in out
    bbox, segm = maps(out)
    assert bbox > BBOX_FLOOR and segm > SEGM_FLOOR, (bbox, segm)
    # the floors also hold with broken adapters (neck and heads train): check the adapters,
    # and that the frozen backbone weights are still the pretrained ones
    from mmdet.registry import MODELS
    from mmengine.config import Config

    from mmliera.checkpoint.safe_load import safe_load
    model = MODELS.build(Config.fromfile(demo_run['cfg']).model)
    state = safe_load(demo_run['ckpt'])['state_dict']
    model.load_state_dict(state, strict=True)
    for k, v in ck['state_dict'].items():
        assert torch.equal(state[k], v), k
    assert_adapters_trained(model.backbone, torch.randn(1, 3, 256, 256))


def test_pretrained_load_is_one_info_line(demo_run):
    """The pretrained backbone loads into the frozen weights with one line; no adapter key is
    listed as missing (mmengine's "do not match exactly" message)."""
    assert 'do not match exactly' not in demo_run['out']
    lines = [
        ln for ln in demo_run['out'].splitlines() if 'tensors loaded into the frozen weights' in ln
    ]
    assert len(lines) == 1 and 'LieRAConvNeXt: 144 of 144 tensors' in lines[0], lines
    assert '80 adapter tensors (40 LieRA layers) start fresh' in lines[0]


def test_test_tool_reports_the_same_map(demo_run, tmp_path):
    out_pkl = tmp_path / 'results.pkl'
    out = runner_output('test', demo_run['cfg'], demo_run['ckpt'], '--work-dir', tmp_path / 'test',
                        '--out', out_pkl, '--show-dir', 'shows')
    # --out: mmdet's DumpDetResults, one entry per val image with boxes, scores, labels, masks
    import pickle
    with open(out_pkl, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 32
    assert {r['img_id'] for r in results} == set(range(1, 33))
    pred = results[0]['pred_instances']
    n = len(pred['scores'])
    assert pred['bboxes'].shape == (n, 4) and pred['labels'].shape == (n, )
    assert len(pred['masks']) == n
    # --show-dir: one painted picture per val image, under the test run's timestamp folder
    import mmcv
    painted = sorted((tmp_path / 'test').glob('*/shows/*.jpg'))
    assert len(painted) == 32, painted[:3]
    assert mmcv.imread(str(painted[0])).shape[:2] == (256, 2 * 256)  # ground truth | prediction
    # exact: the same weights (the checkpoint holds the trained tensors bit for bit), the same
    # single-process val loader (same batches, same padding) and deterministic CPU kernels
    assert maps(out) == maps(demo_run['out'])
    assert out_pkl.stat().st_size > 0


def test_dist_test_two_processes_same_map(demo_run, tmp_path):
    out = run([
        'bash', 'tools/dist_test.sh', demo_run['cfg'], demo_run['ckpt'], '2', '--work-dir',
        str(tmp_path / 'dtest')
    ],
              env=dict(PORT=str(free_port()), CUDA_VISIBLE_DEVICES=''))  # CPU ranks
    # not exact by construction: each rank evaluates a different subset in batches of another
    # composition (DistributedSampler), so CPU kernels may block and round differently and a
    # score near a threshold may move; the mAPs agree to a few thousandths
    for dist_map, single_map in zip(maps(out), maps(demo_run['out'])):
        assert abs(dist_map - single_map) <= MAP_TOL, (maps(out), maps(demo_run['out']))


def test_dist_train_two_cpu_processes(demo_run, tmp_path):
    cfg = write_cfg(
        tmp_path / 'dist.py', demo_run['cfg'], NO_VALIDATION + """
custom_imports = dict(imports=['mmliera', 'dist_probe_hook'], allow_failed_imports=False)
train_cfg = dict(max_iters=4, val_interval=100)
train_dataloader = dict(batch_size=2)
default_hooks = dict(logger=dict(interval=1))
find_unused_parameters = False
custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='ParamProbeHook')]
""")
    work = tmp_path / 'dwork'
    out = run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir',
               str(work)],
              env=dict(PORT=str(free_port()), CUDA_VISIBLE_DEVICES=''))  # CPU ranks
    assert 'Iter(train) [4/4]' in out
    probes = {
        (tag, r): torch.load(work / f'probe_{tag}_rank{r}.pth', weights_only=True)
        for tag in ('start', 'end')
        for r in (0, 1)
    }
    for r in (0, 1):
        start, end = probes['start', r], probes['end', r]
        assert end['__wrapped__'] == 'MMDistributedDataParallel'
        trainable = set(start['__requires_grad__'])
        names = [n for n in start if not n.startswith('__')]
        for n in names:
            if n not in trainable:
                assert torch.equal(start[n], end[n]), f'rank {r}: frozen {n} changed'
        assert all(
            n.startswith('backbone.') is False or n.endswith(('lora_A', 'lora_B'))
            for n in trainable)
        for n in ('backbone.stages.3.1.pointwise_conv2.lora_B', 'neck.fpn_convs.0.conv.weight',
                  'roi_head.bbox_head.fc_cls.weight', 'rpn_head.rpn_conv.weight'):
            assert n in trainable and not torch.equal(start[n], end[n]), f'rank {r}: {n}'
    for n in probes['end', 0]:
        if not n.startswith('__'):
            assert torch.equal(probes['end', 0][n], probes['end', 1][n]), f'ranks differ: {n}'


# --resume after an interruption (the last checkpoint, bit-identical weights): tests/
# test_faults.py (2 processes, by iteration and by epoch) and test_fault_units.py (one process);
# here only --resume with a given checkpoint and --auto-scale-lr.


def test_resume_from_a_given_checkpoint_and_auto_scale_lr(demo_run, tmp_path):
    work = tmp_path / 'from_ckpt'
    out = runner_output('train', demo_run['cfg'], '--work-dir', work, '--resume', demo_run['ckpt'],
                        '--auto-scale-lr', '--cfg-options', 'train_cfg.max_iters=42',
                        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
                        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2')
    assert f'Load checkpoint from {demo_run["ckpt"]}' in out
    assert 'resumed epoch: 0, iter: 40' in out and 'Iter(train) [42/42]' in out
    assert 'Iter(train) [40/42]' not in out and (work / 'iter_42.pth').is_file()
    assert 'current batch size is 2. Scaling the original LR by 0.5' in out


def test_cli_errors_before_any_work(demo_run, tmp_path):
    """Bad options stop with one message (an exception, or SystemExit for user errors)
    before a runner is built."""
    import pytest

    from mmliera.cli import test_main, train_main
    no_scale = write_cfg(tmp_path / 'no_scale.py', demo_run['cfg'],
                         'auto_scale_lr = dict(_delete_=True, enable=False)\n')
    cases = [
        (train_main, [demo_run['cfg'], '--resume',
                      'nope.pth'], '--resume nope.pth: no such checkpoint file'),
        (train_main, [no_scale, '--auto-scale-lr'], '--auto-scale-lr needs auto_scale_lr'),
        (test_main, [demo_run['cfg'], demo_run['ckpt'], '--out',
                     'r.json'], '--out must be a .pkl or .pickle file'),
        (test_main, [demo_run['cfg'], 'nope.pth'], 'checkpoint nope.pth does not exist'),
    ]
    if not torch.cuda.is_available():
        cases.append(
            (train_main, [demo_run['cfg'],
                          '--amp'], 'mixed precision (--amp / AmpOptimWrapper) needs a GPU'))
    for main, argv, msg in cases:
        with pytest.raises((SystemExit, Exception), match=re.escape(msg)):
            main(argv + ['--work-dir', str(tmp_path / 'w')])
    assert not (tmp_path / 'w').exists()  # no run was started
