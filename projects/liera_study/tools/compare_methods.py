"""Compare fine-tuning methods x seeds: train, test, then a table and a plot.

    python projects/liera_study/tools/compare_methods.py [NAME=]CONFIG ... [--seeds 0 1 2]
    [--work-dir DIR]
                                    [--out-dir DIR] [--cfg-options k=v ...] [--rerun]

See projects/liera_study/liera_study/compare/ and projects/liera_study/docs/study.md ("Does LieRA
pay off?").
"""
import os.path as osp
import sys

# the checkout on the path: this project's package is projects.liera_study.liera_study
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))

import mmliera  # noqa: E402,F401  (environment check, registration)
from mmliera.cli import exit_on_user_error  # noqa: E402
from projects.liera_study.liera_study.compare import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(exit_on_user_error(main)())
