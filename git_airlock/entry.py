"""The ``git-airlock`` console script.

``hook-impl`` (what the installed pre-push hook runs) is dispatched before
click is even imported: the hook runs on every push and must cost little more
than the interpreter itself.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["hook-impl"]:
        from git_airlock.hookrun import main as hook_main

        try:
            sys.exit(hook_main(sys.argv[2:]))
        except KeyboardInterrupt:
            sys.exit(130)
    from git_airlock.cli import main as cli_main

    cli_main()
