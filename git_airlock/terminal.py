"""Printing text that may come from a sandbox, safely.

Commit messages, file names and ref names written by an agent are untrusted:
an escape sequence could rewrite the terminal, hide lines or set the window
title. Everything sandbox-supplied goes through :func:`sanitize` before it
reaches a terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(text: str) -> str:
    """Replace control characters (except newline and tab) with a visible ``^X`` form."""

    def show(match: re.Match[str]) -> str:
        code = ord(match.group())
        if code < 0x20:
            return "^" + chr(code + 0x40)
        if code == 0x7F:
            return "^?"
        return f"\\x{code:02x}"

    return _CONTROL.sub(show, text)


def sanitize_line(text: str) -> str:
    """Sanitize and also flatten newlines, for one-line displays such as subjects."""
    return sanitize(text.replace("\n", " ").replace("\t", " "))


def is_terminal(stream=None) -> bool:
    """True when ``stream`` (stdout by default) is an interactive terminal."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def page(text: str) -> None:
    """Show ``text`` through git's pager on a terminal, like ``git diff`` does.

    The pager command comes from git itself (``git var GIT_PAGER``), so users'
    ``core.pager``/``GIT_PAGER``/``PAGER`` choices apply. It is split into an
    argument list, never handed to a shell with our text in it.
    """
    if not is_terminal() or not text:
        sys.stdout.write(text)
        return
    result = subprocess.run(["git", "var", "GIT_PAGER"], capture_output=True, text=True)
    pager = result.stdout.strip() if result.returncode == 0 else "less"
    if pager in ("", "cat"):
        sys.stdout.write(text)
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    try:
        proc = subprocess.Popen(shlex.split(pager), stdin=subprocess.PIPE, env=env)
    except (OSError, ValueError):
        sys.stdout.write(text)
        return
    with contextlib.suppress(BrokenPipeError):
        proc.communicate(text.encode("utf-8", "replace"))
