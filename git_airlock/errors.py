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


LONG_ARGUMENT = 200
"""Arguments longer than this (a sandboxed upload-pack command line, say) are shortened in messages;
``--dry-run`` prints them whole."""


class CommandFailed(AirlockError):
    """An external command (git, sbx, tmux, gh) exited non-zero.

    Carries the command line so the user can rerun it by hand (git-machete's
    habit of naming the git command that failed).
    """

    def __init__(self, argv: list[str], returncode: int, detail: str = "", hint: str | None = None):
        from git_airlock.plan import quote_argv

        shown = [arg if len(arg) <= LONG_ARGUMENT else f"{arg[:40]}...({len(arg)} characters)" for arg in argv]
        message = f"command failed (exit {returncode}): {quote_argv(shown)}"
        if detail:
            message += f"\n{detail.rstrip()}"
        super().__init__(message, hint)
        self.argv = argv
        self.returncode = returncode


class UsageError(AirlockError):
    """The command line itself is wrong (unknown command, bad argument): exit status 2."""

    exit_code = 2
