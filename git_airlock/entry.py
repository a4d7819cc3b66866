"""The ``git-airlock`` console script.

``hook-impl`` (what the installed pre-push hook runs) is dispatched before
click is even imported: the hook runs on every push and must cost little more
than the interpreter itself.
"""

from __future__ import annotations

import sys


def harden_streams() -> None:
    """Make stdout and stderr write a lone surrogate as ``\\udc9b`` text, never as a raw byte.

    git output is decoded with ``surrogateescape``, so an undecodable byte such
    as 0x9b (CSI on terminals that honour 8-bit controls) is held as U+DC9B,
    and Python's stdout writes it back as the byte under C and C.UTF-8
    locales. Sandbox text is sanitised before it is printed; this is the
    backstop for a path that forgot, and it also keeps a character the
    terminal's encoding lacks from crashing the command.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main() -> None:
    harden_streams()
    if sys.argv[1:2] == ["hook-impl"]:
        from git_airlock.review.prepush import main as hook_main

        try:
            sys.exit(hook_main(sys.argv[2:]))
        except KeyboardInterrupt:
            sys.exit(130)
    from git_airlock.cli import main as cli_main

    cli_main()
