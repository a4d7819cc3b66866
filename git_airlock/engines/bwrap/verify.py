"""Running the project's checks on a merge before it lands: a fresh bwrap sandbox, no network.

The merged tree comes in as a ``git archive`` stream and is unpacked inside the sandbox, in its
own size-limited ``/tmp``: the sandbox sees no repository of the host (nor your HOME), cannot write
anything that outlives it, and reaches no network. It is built from the same pieces as every
other sandbox of git-airlock (user, seccomp filter, devices), kept in a throwaway folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from git_airlock import process
from git_airlock.engines.bwrap import confine
from git_airlock.errors import AirlockError

WORK = "/tmp/work"
UNPACK_AND_RUN = f'mkdir {WORK} && cd {WORK} && tar -x -f - && exec sh -c "$1"'


class _Scratch:
    """A :class:`~git_airlock.engines.bwrap.layout.Place` of its own: passwd/group and devices for one run."""

    def __init__(self, root: str) -> None:
        self.etc = os.path.join(root, "etc")
        self.dev = os.path.join(root, "dev")


def check_merge(repo_root: str, commit: str, command: str, tmp_size: int) -> int:
    """Run ``command`` (``sh -c``) in the tree of ``commit``; its exit status. The output is the user's to see."""
    if shutil.which("bwrap") is None:
        raise AirlockError(
            "--verify runs the command in a bubblewrap sandbox, and bwrap is not installed",
            hint="`apt-get install bubblewrap` (Linux); `git airlock doctor` checks",
        )
    root = tempfile.mkdtemp(prefix="git-airlock-verify-")
    try:
        place = _Scratch(root)
        confine.prepare(place)
        argv = [
            *confine.offline(place, tmp_size, []),
            "sh",
            "-c",
            UNPACK_AND_RUN,
            "verify",
            command,
        ]
        archive = ["git", "-C", repo_root, "-c", "core.hooksPath=/dev/null", "archive", "--format=tar", commit]
        return process.feed(archive, confine.with_filter(argv))
    finally:
        shutil.rmtree(root, ignore_errors=True)
