"""Test (evaluate) a checkpoint with mmliera registered (mmdet's tools/test.py command line).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import os.path as osp
import sys

# the checkout first on the path, as mmdet's dist_train.sh puts it on PYTHONPATH: configs under
# projects/ name their own code in custom_imports (e.g. projects.liera_study.liera_study)
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmliera  # noqa: E402,F401  (environment check; registers mmliera in mmdet's registries)
from mmliera.cli import test_main  # noqa: E402

if __name__ == '__main__':
    test_main()
