"""Compare fine-tuning methods x seeds: train, test, then a table and a plot.

    python tools/compare_methods.py [NAME=]CONFIG ... [--seeds 0 1 2] [--work-dir DIR]
                                    [--out-dir DIR] [--cfg-options k=v ...] [--rerun]

See mmliera/method_comparison.py and README's "Does LieRA pay off?" section.
"""
import sys

import mmliera  # noqa: F401  (environment check, registration)
from mmliera.cli import exit_on_user_error
from mmliera.method_comparison import ComparisonError, main

if __name__ == '__main__':
    sys.exit(exit_on_user_error(main, (ComparisonError, ))())
