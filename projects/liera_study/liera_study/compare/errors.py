"""The comparison's one error (its own module: every other module of the comparison may raise
it without importing another's)."""
from mmliera.utils.errors import UserError


class ComparisonError(UserError, ValueError):
    """A bad comparison request (the message says what to change)."""
