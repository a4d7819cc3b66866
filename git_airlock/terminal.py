"""Printing text that may come from a sandbox, safely.

Commit messages, file names and ref names written by an agent are untrusted:
an escape sequence could rewrite the terminal, hide lines or set the window
title. Everything sandbox-supplied goes through :func:`sanitize` before it
reaches a terminal.

What is made visible, and why:

- C0 controls and DEL (``ESC [`` starts an escape sequence);
- C1 controls U+0080-U+009F: terminals that honour 8-bit controls read U+009B
  as CSI, and a Latin-1 terminal gets the byte itself;
- lone surrogates: git output is decoded with ``surrogateescape``, so an
  undecodable byte such as 0x9b is held as U+DC9B, and writing that back with
  ``surrogateescape`` (Python's stdout default under C and C.UTF-8 locales)
  sends the raw byte. U+DC80-U+DCFF shows as the byte, ``\\x9b``;
- bidirectional controls (Trojan Source): they reorder what follows, so a
  name can display as something else. They show as ``<U+202E>``.

Once sanitised, text holds no surrogate, so no error handler can turn it into
a raw byte.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from typing import TextIO

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (not tab, newline), DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional controls
    "\ud800-\udfff]"  # lone surrogates: undecodable bytes under surrogateescape
)


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    if code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"<U+{code:04X}>"


def sanitize(text: str) -> str:
    """Make every character that can drive or mislead a terminal visible (newline and tab stay).

    C0 controls become ``^X``, C1 controls and undecodable bytes ``\\xNN``,
    bidirectional controls and other lone surrogates ``<U+XXXX>``.
    """
    return _UNSAFE.sub(_show, text)


def sanitize_line(text: str) -> str:
    """Sanitize and also flatten newlines, for one-line displays such as subjects."""
    return sanitize(text.replace("\n", " ").replace("\t", " "))


_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}


def colorize_patch(patch: str) -> str:
    """Colour a sanitised patch the way ``git diff`` does: our escapes are the only ones left in it."""
    lines = []
    for line in patch.splitlines(keepends=True):
        if line.startswith(("diff --git", "index ", "--- ", "+++ ")):
            lines.append(f"\x1b[1m{line.rstrip(chr(10))}\x1b[m\n")
        elif line[:1] in _COLORS:
            lines.append(f"{_COLORS[line[0]]}{line.rstrip(chr(10))}\x1b[m\n")
        else:
            lines.append(line)
    return "".join(lines)


def is_terminal(stream: TextIO | None = None) -> bool:
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
    from git_airlock.process import probe

    result = probe(["git", "var", "GIT_PAGER"])
    pager = result.stdout.strip() if result is not None and result.returncode == 0 else "less"
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


def human_bytes(count: int) -> str:
    """``512 B``, ``12 KiB``, ``3.4 MiB``: a size as people read it."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit in ("B", "KiB") or size >= 100 else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
