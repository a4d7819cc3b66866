"""Mount a sandbox's copy-on-write working tree, then run a command in that mount namespace.

Started as ``unshare --user --map-root-user --mount -- python -m
git_airlock.overlay [--read-only] LOWER UPPER WORK MERGED -- COMMAND...``.
LOWER is a checkout shared by every sandbox made from the same commit, UPPER
holds one sandbox's changes, so creating a sandbox costs no checkout. The
mount exists only in the new mount namespace (and for the process that
execs into COMMAND, usually bwrap), never on the host. ``--read-only`` stacks
UPPER on LOWER without a writable layer, to look at a sandbox's files from
the host while the sandbox itself may be running. Arguments only; no shell.
"""

from __future__ import annotations

import os
import subprocess
import sys


def options(lower: str, upper: str, work: str, read_only: bool) -> str:
    if read_only:
        return f"lowerdir={upper}:{lower}"
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def main(argv: list[str]) -> int:
    read_only = bool(argv) and argv[0] == "--read-only"
    if read_only:
        argv = argv[1:]
    if len(argv) < 6 or argv[4] != "--":
        print(
            "usage: python -m git_airlock.overlay [--read-only] LOWER UPPER WORK MERGED -- COMMAND...", file=sys.stderr
        )
        return 2
    lower, upper, work, merged, _, *command = argv
    mount = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options(lower, upper, work, read_only), merged],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        print(f"git-airlock: cannot mount the sandbox's working tree: {mount.stderr.strip()}", file=sys.stderr)
        return 125
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
