"""Compare fine-tuning methods x seeds: train, test, then a table and a plot.

    python tools/compare_methods.py [NAME=]CONFIG ... [--seeds 0 1 2] [--work-dir DIR]
                                    [--out-dir DIR] [--cfg-options k=v ...] [--rerun]

See mmliera/cli/compare/ and docs/study.md ("Does LieRA pay off?").
"""
import sys

import mmliera  # noqa: F401  (environment check, registration)
from mmliera.cli import exit_on_user_error
from mmliera.cli.compare import main

if __name__ == '__main__':
    sys.exit(exit_on_user_error(main)())
