"""The one error type commands raise for problems the user can fix.

The CLI turns an :class:`AirlockError` into ``error: ...`` plus an optional
``hint: ...`` line and exit status 1, so no user ever sees a traceback for a
mistake they can correct (pre-commit's FatalError model).
"""

from __future__ import annotations


class AirlockError(Exception):
    """A failure with a message for the user and, ideally, what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(AirlockError):
    """The command line itself is wrong (unknown command, bad argument): exit status 2."""

    exit_code = 2
