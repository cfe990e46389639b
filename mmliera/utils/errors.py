"""UserError: an expected mistake (a bad setting, a missing file) whose message says what to change.

Tools print it as one ``error: ...`` line and exit with status 1 (:mod:`mmliera.cli.errors`);
a traceback is kept for bugs. Concrete errors subclass it together with the builtin they refine
(``class AdapterConfigError(UserError, ValueError)``), so ``except ValueError`` still works.
"""


class UserError(Exception):
    """Base of mmliera's expected-mistake errors (see the module docstring)."""
