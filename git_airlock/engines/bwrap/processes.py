"""Finding and stopping a sandbox's processes.

Each sandbox's bwrap carries ``--setenv GIT_AIRLOCK_SANDBOX <name>/<id>`` in its
command line, and so do the processes that start it. Stopping them is enough: bwrap's
PID namespace takes every process of the sandbox along. Processes are found by that tag (its id is
random) and, for an ordinary user, by the user's uid, so two sandboxes (or two repositories that
picked the same name) never see or stop each other's. Root looks at every uid: its sandboxes run
as uids of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from git_airlock.errors import AirlockError

MARKER = "GIT_AIRLOCK_SANDBOX"


def running_pids(tag: str) -> list[int]:
    """Processes of this user whose command line carries the marker ``tag``: bwrap, and what starts it
    (the egress gate's supervisor, the overlay's and the filter's prefixes). Counting those too means a
    sandbox is running from the instant ``up`` started it, not only once bwrap itself runs: a second
    ``up`` that looks in between must not start a second agent."""
    found = []
    uid = os.getuid()
    wanted = tag.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if uid != 0 and os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        for i in range(len(argv) - 2):
            if argv[i] == b"--setenv" and argv[i + 1] == MARKER.encode() and argv[i + 2] == wanted:
                found.append(int(entry))
                break
    return found


def kill(name: str, tag: str) -> None:
    """Stop every bwrap of the sandbox; its PID namespace takes all the sandbox's processes along."""
    pids = running_pids(tag)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            if pids:
                time.sleep(0.02)
        if not pids:
            return
    raise AirlockError(f"could not stop sandbox {name}: processes {pids} survive", hint="kill them by hand")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
