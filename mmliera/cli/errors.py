"""One error convention for every tool: an expected mistake is one ``error: ...`` line.

:func:`exit_on_user_error` runs a tool's ``main(argv)``; a :class:`mmliera.utils.UserError`
(a bad setting, a missing file, a checkpoint that does not fit, ...) ends the program with
``error: <what to change>`` on stderr and exit status 1, no traceback. ``--debug`` on the command
line (or ``MMLIERA_DEBUG=1``) shows the traceback instead. Anything else is a bug and keeps its
traceback.
"""
import functools
import os
import sys
import warnings

from ..utils.errors import UserError

USER_ERRORS = (UserError, )


class UsageError(UserError, ValueError):
    """A command-line option that cannot be used as given."""


class ErrorExit(SystemExit):
    """Exit status 1 after writing ``message`` + newline to stderr in one write (so the lines of
    several processes sharing a stream, e.g. DDP ranks, do not interleave); ``str()`` is the
    message."""

    def __init__(self, message):
        super().__init__(1)
        self.message = message
        sys.stderr.write(message + '\n')
        sys.stderr.flush()

    def __str__(self):
        return self.message


def debug_requested(argv):
    return '--debug' in argv or os.environ.get('MMLIERA_DEBUG', '') not in ('', '0')


def one_line(error):
    """The error's message on one line (mmengine prefixes build errors with the class)."""
    return ' '.join(str(error).split())


def exit_on_user_error(main, errors=USER_ERRORS):
    """Wrap ``main(argv=None, ...)`` with the convention of the module docstring."""

    @functools.wraps(main)
    def wrapped(argv=None, *args, **kwargs):
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = debug_requested(argv)
        argv = [a for a in argv if a != '--debug']
        # mmengine 0.10.7 reloads pkg_resources whenever a config names an ``mmdet::`` base;
        # its deprecation notice (we pin setuptools<81 for it) is not news for a tool's user
        with warnings.catch_warnings():
            warnings.filterwarnings(
                'ignore', message='pkg_resources is deprecated', category=UserWarning)
            try:
                return main(argv, *args, **kwargs)
            except errors as e:
                if debug:
                    raise
                raise ErrorExit(f'error: {one_line(e)}') from None

    return wrapped
