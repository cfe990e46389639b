"""Command lines (tools/*.py run these): train, test, the method comparison, and the one error
convention (:mod:`.errors`). Not imported by ``import mmliera``."""
from .errors import USER_ERRORS, UsageError, exit_on_user_error
from .launch import build_runner, setup_distributed
from .test import parse_test_args, test_main
from .train import parse_train_args, train_main

__all__ = [
    'USER_ERRORS', 'UsageError', 'exit_on_user_error', 'build_runner', 'setup_distributed',
    'parse_test_args', 'test_main', 'parse_train_args', 'train_main'
]
