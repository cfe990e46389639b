"""Test (evaluate) a checkpoint with mmliera registered (mmdet's tools/test.py command line).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import mmliera  # noqa: F401  (environment check; registers mmliera in mmdet's registries)
from mmliera.cli import test_main

if __name__ == '__main__':
    test_main()
