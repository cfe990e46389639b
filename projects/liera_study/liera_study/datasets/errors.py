"""TaskSettingError: a study task asked for with settings it cannot have.

A :class:`mmliera.utils.errors.UserError` (tools print it as one ``error:`` line, exit 1) and a
``ValueError`` (``except ValueError`` still catches it).
"""
from mmliera.utils.errors import UserError


class TaskSettingError(UserError, ValueError):
    """A study task's bad setting; the message says what to change."""
