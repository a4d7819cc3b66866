"""Will two lines of work merge? ``git merge-tree --write-tree`` answers without touching anything.

It merges in memory (git 2.38 and later) and writes only objects, never the working tree, the
index or a ref: the answer for a sandbox against your branch, and for every two sandboxes against
each other, before any merge is tried. The merges run at once, one process each.
"""

from __future__ import annotations

from dataclasses import dataclass

from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git

MINIMUM_GIT = (2, 38)
"""The first git whose ``merge-tree`` has ``--write-tree``."""


@dataclass(frozen=True)
class Outcome:
    """How merging ``theirs`` into ``ours`` would go: cleanly, or with conflicts in ``paths``."""

    ours: str
    theirs: str
    paths: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.paths


def merges(git: Git, pairs: list[tuple[str, str]]) -> list[Outcome]:
    """The outcome of merging each ``(ours, theirs)`` pair of commits, asked of git all at once."""
    merge_tree = ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z"]
    calls = [[*merge_tree, ours, theirs] for ours, theirs in pairs]
    outcomes = []
    for (ours, theirs), (status, out, err) in zip(pairs, git.run_many_status(calls), strict=True):
        if status not in (0, 1):
            raise AirlockError(
                f"git merge-tree could not merge {ours[:10]} and {theirs[:10]}: {err.strip()}",
                hint=f"the forecast needs git {'.'.join(map(str, MINIMUM_GIT))} or later; `git airlock doctor` checks",
            )
        paths = tuple(dict.fromkeys(path for path in out.split("\0")[1:] if path)) if status == 1 else ()
        outcomes.append(Outcome(ours, theirs, paths))
    return outcomes
