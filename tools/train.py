"""Train a detector with mmliera registered (mmdet's tools/train.py command line).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``--launcher pytorch`` on a machine without CUDA trains on CPUs with gloo (see
``bash tools/dist_train.sh CONFIG N``).
"""
import os.path as osp
import sys

# the checkout first on the path, as mmdet's dist_train.sh puts it on PYTHONPATH: configs under
# projects/ name their own code in custom_imports (e.g. projects.liera_study.liera_study)
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmliera  # noqa: E402,F401  (environment check; registers mmliera in mmdet's registries)
from mmliera.cli import train_main  # noqa: E402

if __name__ == '__main__':
    train_main()
