"""PretrainBackboneHook: make the pretrained backbone checkpoint a config starts from, if
missing."""
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.dist import broadcast_object_list, get_dist_info
from mmengine.hooks import Hook

from ...checkpoint.atomic import atomic_path
from ...checkpoint.digest import weights_sha256
from ...checkpoint.resume import read_last_checkpoint
from ...checkpoint.safe_load import safe_load
from ...registry import HOOKS
from ...utils.errors import UserError

# torchrun's variables: the pre-training subprocess is a plain single-process run
_DIST_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'ROLE_RANK',
             'ROLE_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_RUN_ID')


def export_backbone(src, dst, prefix='backbone.', drop=()):
    """Write the ``prefix`` weights of checkpoint ``src`` to ``dst`` in mmpretrain's format.

    ``{'meta': {...}, 'state_dict': {'backbone.<name>': tensor}}``: what mmpretrain's model zoo
    ships and ``init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.')`` reads.
    ``prefix=''``: the whole model (a detector for ``load_from``), without the modules named in
    ``drop`` (e.g. its class layers, which the adapted detector re-creates).
    """
    ckpt = safe_load(src)
    drop = tuple(f'{d}.' for d in drop)
    state = {
        k: v
        for k, v in ckpt.get('state_dict', ckpt).items()
        if k.startswith(prefix) and not k.startswith(drop)
    }
    if not state:
        raise ValueError(f'{src} has no parameters under {prefix!r}')
    meta = dict(source=osp.abspath(src), iter=ckpt.get('meta', {}).get('iter'))
    with atomic_path(dst) as tmp:
        torch.save(dict(meta=meta, state_dict=state), tmp)
    return dst


class PretrainBackboneError(UserError, RuntimeError):
    """The backbone could not be pre-trained (missing config, failed run); on every rank."""


@HOOKS.register_module()
class PretrainBackboneHook(Hook):
    """Before the run, make sure ``checkpoint`` exists: if not, train ``config`` and export it.

    The pre-training (e.g. a short full training of a plain ConvNeXt Mask R-CNN on another data
    split) runs as ``python -m mmliera.cli train config`` in one subprocess on rank 0 (the other
    ranks wait for its file); its last checkpoint's backbone is written to ``checkpoint`` in
    mmpretrain's format. mmengine initialises weights after the ``before_run`` hooks, so the
    model's ``init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')``
    loads it.

    Reproducible: the subprocess is a plain single-process run (torchrun's variables removed)
    with ``threads`` intra-op threads (default 1) and, with ``device='cpu'`` (default), no
    visible GPU, so the same file comes out however the outer run was launched (thread count,
    one process or several, a GPU or not) on a given kind of CPU. The weights' checksum
    (:func:`mmliera.checkpoint.weights_sha256`) is logged; with ``sha256`` given, a different
    one is reported as a warning (the run starts from another backbone than the one pinned).

    Args:
        config (str): the pre-training config.
        checkpoint (str): where the mmpretrain-format backbone checkpoint is (to be) written.
        work_dir (str, optional): the pre-training work dir (default: beside ``checkpoint``).
        cfg_options (dict, optional): ``--cfg-options`` for the pre-training run.
        sha256 (str, optional): the expected weights checksum of ``checkpoint``.
        threads (int, optional): intra-op threads of the pre-training (None: inherited).
        device (str): 'cpu' hides GPUs from the pre-training; None leaves them visible.
        prefix (str): the part of the pre-trained model written to ``checkpoint``
            (default ``'backbone.'``; ``''``: the whole detector, for ``load_from``).
        drop (list[str]): module names left out of ``checkpoint`` (e.g. class layers).
    """

    priority = 'VERY_HIGH'
    # the argument naming the file this hook makes before the run when it is missing (the
    # trainer's load_from check leaves such a file to the hook)
    makes_file = 'checkpoint'

    def __init__(self,
                 config,
                 checkpoint,
                 work_dir=None,
                 cfg_options=None,
                 sha256=None,
                 threads=1,
                 device='cpu',
                 prefix='backbone.',
                 drop=()):
        self.config = config
        self.checkpoint = checkpoint
        self.work_dir = work_dir or osp.join(osp.dirname(osp.abspath(checkpoint)), 'work_dir')
        self.cfg_options = dict(cfg_options or {})
        self.sha256 = sha256
        self.threads = threads
        self.device = device
        self.prefix = prefix
        self.drop = tuple(drop)
        self.weights_sha256 = None

    def before_run(self, runner):
        rank, world_size = get_dist_info()
        error = None
        if rank == 0:
            try:
                if not osp.isfile(self.checkpoint):
                    self._pretrain(runner)
                self._report(runner)
            except PretrainBackboneError as e:
                error = str(e)
        if world_size > 1:  # every rank learns rank 0's outcome (and waits for its file)
            box = [error]
            broadcast_object_list(box, src=0)
            error = box[0]
        if error is not None:
            raise PretrainBackboneError(error)

    def _report(self, runner):
        self.weights_sha256 = weights_sha256(self.checkpoint)
        what = 'backbone' if self.prefix == 'backbone.' else 'checkpoint'
        runner.logger.info(f'PretrainBackboneHook: starting {what} {self.checkpoint}, weights '
                           f'sha256 {self.weights_sha256}')
        if self.sha256 and self.sha256 != self.weights_sha256:
            runner.logger.warning(
                f'PretrainBackboneHook: the backbone at {self.checkpoint} has weights sha256 '
                f'{self.weights_sha256[:16]}..., not the {str(self.sha256)[:16]}... this config '
                'pins: this run starts from another backbone, so its results will not match '
                'those made from the pinned one. Delete the file to pre-train it again with '
                'this config (single-threaded on the CPU), or set sha256=None to pin nothing.')

    def _pretrain(self, runner):
        if not osp.isfile(self.config):
            raise PretrainBackboneError(
                f'PretrainBackboneHook: the pre-training config {self.config} does not exist; '
                f'fix its config= or put the pre-trained backbone at {self.checkpoint}')
        cmd = [
            sys.executable, '-m', 'mmliera.cli', 'train', self.config, '--work-dir', self.work_dir
        ]
        if self.cfg_options:
            cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in self.cfg_options.items()]
        runner.logger.info(f'PretrainBackboneHook: no backbone checkpoint at {self.checkpoint}; '
                           f'pre-training it first: {" ".join(cmd)}')
        env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
        if self.threads is not None:
            for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
                env[var] = str(self.threads)
        if self.device == 'cpu':
            env['CUDA_VISIBLE_DEVICES'] = ''
        log = osp.join(self.work_dir, 'pretrain.log')
        os.makedirs(self.work_dir, exist_ok=True)
        with open(log, 'w') as out:  # shown as it runs, and kept for the error line
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors='replace')
            try:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    out.write(line)
            except BaseException:  # interrupted: leave no pre-training behind
                proc.kill()
                proc.wait()
                raise
            proc.wait()
        if proc.returncode:
            raise PretrainBackboneError(
                f'PretrainBackboneHook: pre-training the backbone failed (exit status '
                f'{proc.returncode}): {_last_line(log)}; full log: {log}')
        last = read_last_checkpoint(self.work_dir)
        if last is None:
            raise PretrainBackboneError(f'PretrainBackboneHook: the pre-training in '
                                        f'{self.work_dir} wrote no last_checkpoint; see {log}')
        export_backbone(last, self.checkpoint, self.prefix, self.drop)
        runner.logger.info(f'PretrainBackboneHook: wrote {self.checkpoint} (mmpretrain format) '
                           f'from {last}')


def _last_line(log):
    """The ``error:`` line of a failed run's log, else its last non-empty line."""
    with open(log, errors='replace') as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    errors = [ln for ln in lines if ln.startswith('error:')]
    return (errors or lines or ['no output'])[-1][:300]
