"""Running the project's checks on a merge before it lands: a fresh bwrap sandbox, no network.

The merged tree comes in as a tar stream of its raw objects (:mod:`git_airlock.treetar`: no
attribute or filter of the tree applies on the host) and is unpacked inside the sandbox, in its
own size-limited ``/tmp``: the sandbox sees no repository of the host (nor your HOME), cannot write
anything that outlives it, and reaches no network. The checks are the agent's code, so they run
as a sandbox's root does: in a user namespace of their own whose uids are unprivileged on the host
(for root, a block of uids taken for the run and given back), under the same seccomp filter.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable

from git_airlock import process, treetar
from git_airlock.engines.bwrap import confine, userns
from git_airlock.errors import AirlockError

WORK = "/tmp/work"
UNPACK_AND_RUN = f'mkdir {WORK} && cd {WORK} && tar -x -f - && exec sh -c "$1"'


class _Scratch:
    """A :class:`~git_airlock.engines.bwrap.layout.Place` of its own: passwd/group and devices for one run."""

    def __init__(self, root: str) -> None:
        self.etc = os.path.join(root, "etc")
        self.dev = os.path.join(root, "dev")


def check_merge(repo_root: str, commit: str, command: str, tmp_size: int, show: Callable[[str], None]) -> int:
    """Run ``command`` (``sh -c``) in the tree of ``commit``; its exit status. Each line of its output
    goes to ``show`` (which must print it sanitised: the tree is the agent's)."""
    if shutil.which("bwrap") is None:
        raise AirlockError(
            "--verify runs the command in a bubblewrap sandbox, and bwrap is not installed",
            hint="`apt-get install bubblewrap` (Linux); `git airlock doctor` checks",
        )
    root = tempfile.mkdtemp(prefix="git-airlock-verify-")
    ids = userns.for_new_sandbox(root, dry_run=False)
    try:
        place = _Scratch(root)
        confine.prepare(place)
        bwrap = [*confine.offline(place, tmp_size, [], own_user=False), "sh", "-c", UNPACK_AND_RUN, "verify", command]
        argv = confine.entered(ids, {}, bwrap)
        return process.feed(functools.partial(treetar.write, repo_root, commit), argv, show)
    finally:
        userns.give_back(ids)
        shutil.rmtree(root, ignore_errors=True)
