"""Shared test helpers: configs and small models built from the real configs."""
import contextlib
import os
import re
import signal
import subprocess
import sys

from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_CONFIG = os.path.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py')
STUDY_CONFIGS = os.path.join(ROOT, 'projects', 'liera_study', 'configs')
DEMO = os.path.join(ROOT, 'configs', 'demo', 'liera_maskrcnn_convnextv2-atto_synthetic.py')
PRETRAIN = os.path.join(ROOT, 'configs', 'demo',
                        'full_maskrcnn_convnextv2-atto_synthetic-pretrain.py')


def atto_detector_cfg(config=PAPER_CONFIG, rank=2, **adapter):  # noqa: D401
    """The config's Mask R-CNN with an atto backbone and no pretrained download."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.arch = 'atto'
    cfg.model.backbone.init_cfg = None
    if 'adapter' in cfg.model.backbone:
        cfg.model.backbone.adapter.update(rank=rank, **adapter)
    cfg.model.neck.in_channels = [40, 80, 160, 320]
    return cfg


PORT_TAKEN = ('Address already in use', 'EADDRINUSE')


def stop_group(proc):
    """SIGKILL ``proc``'s process group (it was started with ``start_new_session``)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start(cmd, env=None, **kwargs):
    """Popen ``cmd`` from the repo root in a process group of its own (checkout first on
    PYTHONPATH; 'python' is this interpreter), so a test can stop it with everything it
    started."""
    tests = os.path.join(ROOT, 'tests', 'support')
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, ROOT]))
    full_env.update(env or {})
    return subprocess.Popen([sys.executable if c == 'python' else c for c in cmd],
                            text=True,
                            env=full_env,
                            cwd=ROOT,
                            start_new_session=True,
                            **kwargs)


def communicate(proc, timeout):
    """``proc``'s output (stdout + stderr); on a timeout or an interrupt its whole process
    group is killed before the error goes on."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop_group(proc)
        proc.communicate()
        raise
    return out + (err or '')


def run(cmd, env=None, timeout=900, expect_fail=False):
    """Run a command from the repo root with this checkout first on PYTHONPATH; returns output.

    ``env`` may set PYTHONPATH='' to run without the checkout (and tests/) on the path. The
    command runs in its own process group, killed whole on a timeout. A run given a PORT that
    another process took meanwhile (chosen by :func:`free_port`, bound later) is run again once
    on a new port."""
    for attempt in (1, 2):
        proc = start(cmd, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = communicate(proc, timeout)
        if (attempt == 1 and proc.returncode != 0 and env and 'PORT' in env
                and any(t in out for t in PORT_TAKEN)):
            env = dict(env, PORT=str(free_port()))
            continue
        break
    assert (proc.returncode != 0) if expect_fail else (proc.returncode == 0), out[-6000:]
    return out


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def maps(out):
    bbox = [float(x) for x in re.findall(r'coco/bbox_mAP: ([\d.]+)', out)]
    segm = [float(x) for x in re.findall(r'coco/segm_mAP: ([\d.]+)', out)]
    assert bbox and segm, out[-3000:]
    return bbox[-1], segm[-1]


def write_cfg(path, base, body=''):
    """A config file at ``path`` inheriting ``base`` plus ``body``."""
    path.write_text(f"_base_ = ['{base}']\n" + body)
    return str(path)


def assert_adapters_trained(backbone, x, min_rel_change=1e-3):
    """The adapters of a trained backbone did something: every trainable adapter's B moved off
    its initial value (0, or PiSSA's B0), and the backbone's output differs from the frozen
    backbone's (the same module with every adapter reset to its identity init). A broken
    adapter (no factor gradient, or a forward that ignores the factors) fails here even when the
    neck and heads train well enough to lower the loss and pass an mAP floor."""
    import torch

    from mmliera import adapter_layers
    layers = {n: m for n, m in adapter_layers(backbone).items() if m.lora_B.requires_grad}
    assert layers, 'no trainable adapter'
    still = [
        n for n, m in layers.items()
        if torch.equal(m.lora_B, m.lora_B0 if m.lora_B0 is not None else torch.zeros_like(m.lora_B))
    ]
    assert not still, f'{len(still)} of {len(layers)} adapters never moved: {still[:5]}'
    backbone.eval()
    x = x.to(next(backbone.parameters()).device)  # the backbone may sit on a GPU
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    with torch.no_grad():
        adapted = [o.clone() for o in backbone(x)]
        for m in adapter_layers(backbone).values():
            m.lora_B.zero_()
            m.init_from_weight()  # PiSSA: factors with ΔW = 0; DoRA: m = ||W||
        frozen = backbone(x)
    backbone.load_state_dict(state)
    change = max(float((a - f).abs().max() / f.abs().max()) for a, f in zip(adapted, frozen))
    assert change > min_rel_change, f'adapters change the backbone output by only {change:.2e}'
    return change


def mmliera_types():
    """Every type name mmliera registers in the OpenMMLab registries."""
    from mmdet import registry as det_registry
    from mmengine import registry as engine_registry
    names = set()
    for mod in (det_registry, engine_registry):
        for reg in vars(mod).values():
            if isinstance(reg, engine_registry.Registry):
                names |= {
                    k
                    for k, v in reg.module_dict.items()
                    if getattr(v, '__module__', '').startswith('mmliera')
                }
    assert {'LieRAConvNeXt', 'LieRA', 'LieRAFreezeHook', 'LieRARunner'} <= names
    return names


def mmliera_parts(cfg):
    """Where a config uses mmliera: registered mmliera types anywhere, its runner, its import
    (what plain mmdet could not build); paths that happen to contain 'mmliera' are fine."""
    names, found = mmliera_types(), []

    def walk(node, where):
        if isinstance(node, dict):
            t = node.get('type')
            if isinstance(t, str) and (t in names or t.split('.')[-1] in names
                                       or t.startswith('mmliera.')):
                found.append(f'{where}: {t}')
            for k, v in node.items():
                walk(v, f'{where}.{k}')
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f'{where}[{i}]')

    d = cfg.to_dict()
    walk(d, 'cfg')
    if d.get('runner_type') in names:
        found.append(f'runner_type: {d["runner_type"]}')
    for m in (d.get('custom_imports') or {}).get('imports', []):
        if m == 'mmliera' or m.startswith('mmliera.'):
            found.append(f'custom_imports: {m}')
    return found


@contextlib.contextmanager
def hidden_cuda():
    """CUDA hidden from the subprocesses started meanwhile (CUDA_VISIBLE_DEVICES=''): for tests of
    the CPU (gloo) multi-process path, which on a machine with one GPU would otherwise put two
    ranks on it (mmengine's logger then indexes CUDA_VISIBLE_DEVICES by rank and fails)."""
    old = os.environ.get('CUDA_VISIBLE_DEVICES')
    os.environ['CUDA_VISIBLE_DEVICES'] = ''
    try:
        yield
    finally:
        if old is None:
            os.environ.pop('CUDA_VISIBLE_DEVICES', None)
        else:
            os.environ['CUDA_VISIBLE_DEVICES'] = old


# where each tool lives (mmdet's layout): tools/, tools/analysis_tools/, tools/model_converters/,
# and the study's comparison tool in its project
TOOL_DIRS = [
    'tools', 'tools/analysis_tools', 'tools/model_converters', 'projects/liera_study/tools'
]


def tool_path(tool):
    """The path of ``tool`` (a name without ``.py``) in the checkout."""
    for folder in TOOL_DIRS:
        path = os.path.join(ROOT, folder, f'{tool}.py')
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f'no tool {tool}.py under {TOOL_DIRS}')


def tool_in_process(tool, *args, env=None):
    """``python tools/[...]/<tool>.py args`` (:func:`tool_path`) run in this process from the repo
    root (the interpreter
    and imports are already here: about 8 s less per call than a subprocess on 2 cores).
    Returns (exit code, stdout, stderr). For checks of what a tool says; whether a real
    process shows no traceback is tests/tools/test_tool_errors.py's one subprocess per tool."""
    import io
    import runpy
    from unittest import mock
    path = tool_path(tool)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(sys, 'argv', [path, *map(str, args)]))
        stack.enter_context(mock.patch.dict(os.environ, env or {}))
        stack.enter_context(contextlib.chdir(ROOT))  # as run() starts its commands
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            result = runpy.run_path(path, run_name='__main__')
            code = result.get('__exit_code__', 0)
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:  # sys.exit('message'): the message goes to stderr, status 1
                err.write(f'{e.code}\n')
                code = 1
    return code, out.getvalue(), err.getvalue()


def tool_output(tool, *args, env=None):
    """stdout + stderr of :func:`tool_in_process`, which must succeed."""
    code, out, err = tool_in_process(tool, *args, env=env)
    assert code == 0, (out + err)[-6000:]
    return out + err


def runner_output(tool, *args, env=None, expect_fail=False):
    """stdout + stderr of ``tools/train.py`` or ``tools/test.py`` run in this process (see
    :func:`tool_in_process`), which must succeed (or fail: ``expect_fail``). The runner gets a
    logger and a visualizer of its own: mmengine keeps one instance per name in the process,
    names the logger after the config file and the second the run starts, and mmdet's configs
    name the visualizer 'visualizer', so a later runner would write its log and its scalars
    into an earlier run's files."""
    import uuid
    name = f'run_{uuid.uuid4().hex}'
    code, out, err = tool_in_process(
        tool, *args, '--cfg-options', f'experiment_name={name}', f'visualizer.name={name}', env=env)
    assert (code != 0) if expect_fail else (code == 0), (out + err)[-6000:]
    return out + err


def check_config_builds(path):
    """The config at ``path`` loads and builds its model in its default scope (no data, no
    download), and an adapted config trains what it says: adapter factors (and, for a whole
    detector, its class layers) under LieRARunner and LieRAFreezeHook."""
    from mmliera.apis.model import build_model
    from mmliera.models.peft import is_adapter_factor
    cfg = Config.fromfile(path)
    if 'model' not in cfg:  # a fragment other configs take (e.g. whole_detector/_balloon.py)
        assert os.path.basename(path).startswith('_'), f'{path} has no model'
        return
    model = build_model(cfg)  # in the config's default scope (mmdet or mmpretrain)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    backbone = cfg.model.backbone
    if 'adapter' in backbone:
        assert cfg.get('runner_type') == 'LieRARunner'
        assert any(h['type'] == 'LieRAFreezeHook' for h in cfg.custom_hooks)
        trains = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
        assert trains and all(is_adapter_factor(n) for n in trains)  # frozen_stages: fewer
    if cfg.model.type == 'LieRADetector':  # a whole detector: adapters + class layers train
        assert cfg.get('runner_type') == 'LieRARunner'
        trains = [n for n, p in model.named_parameters() if p.requires_grad]
        new = tuple(model.liera_new_layers)
        assert new and any(n.startswith(new) for n in trains)
        assert all(is_adapter_factor(n) or n.startswith(new) for n in trains) or \
            model.liera_trainable != [re.escape(n) for n in new]  # an arm training more
