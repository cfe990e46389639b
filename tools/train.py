"""Train a detector with mmliera registered (mmdet's tools/train.py command line).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``--launcher pytorch`` on a machine without CUDA trains on CPUs with gloo (see
``bash tools/dist_train.sh CONFIG N``).
"""
import mmliera  # noqa: F401  (environment check; registers mmliera in mmdet's registries)
from mmliera.cli import train_main

if __name__ == '__main__':
    train_main()
