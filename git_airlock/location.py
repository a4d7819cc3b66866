"""Where the repository is, found with one ``git rev-parse`` call.

Kept apart from :mod:`git_airlock.repo` so that commands which only need to
know *where* the repository is (``up``, ``--dry-run``, ``config``) never pay
for importing pygit2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from git_airlock.errors import AirlockError
from git_airlock.process import run


@dataclass(frozen=True)
class RepoLocation:
    root: str
    """Top level of the current work tree."""
    git_dir: str
    common_dir: str
    """Shared git directory; differs from git_dir inside a linked worktree."""

    @property
    def is_linked_worktree(self) -> bool:
        return os.path.realpath(self.git_dir) != os.path.realpath(self.common_dir)

    @property
    def main_root(self) -> str:
        """The main worktree's top level: the same for every worktree of one repository."""
        if not self.is_linked_worktree:
            return self.root
        common = os.path.realpath(self.common_dir)
        return os.path.dirname(common) if os.path.basename(common) == ".git" else common


def find_repo(path: str) -> RepoLocation | None:
    """The repository containing ``path``, or None when there is none."""
    if not os.path.isdir(path):
        raise AirlockError(f"no such directory: {path}", hint="check -C / REPO_DIR")
    proc = run(
        ["git", "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir"],
        cwd=path,
        check=False,
    )
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 3:
        if "dubious ownership" in proc.stderr:
            raise AirlockError(proc.stderr.strip().splitlines()[0], hint="see `git help config` (safe.directory)")
        return None
    root, git_dir, common_dir = lines
    return RepoLocation(root, git_dir, common_dir)


def require_repo(path: str) -> RepoLocation:
    location = find_repo(path)
    if location is None:
        raise AirlockError(
            f"not a git repository (with a work tree): {os.path.abspath(path)}",
            hint="cd into your project, pass -C PATH, or run `git airlock up` to offer `git init`",
        )
    return location
