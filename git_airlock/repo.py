"""Everything git-airlock does to a repository after a fetch, through pygit2.

This is the only module that imports pygit2 (about 70 ms), so commands that
do not need it never load it. Sandbox content read here is untrusted: no
hook, filter driver, textconv or external diff ever runs, because libgit2
implements none of them, and text shown to a user is sanitised by callers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import pygit2
from pygit2.enums import CheckoutNotify, CheckoutStrategy, DiffStatsFormat

from git_airlock.errors import AirlockError
from git_airlock.gitcmd import EMPTY_TREE
from git_airlock.location import RepoLocation


@dataclass(frozen=True)
class MergeOutcome:
    kind: Literal["up-to-date", "fast-forward", "merge"]
    """'up-to-date', 'fast-forward' or 'merge'."""
    old: str
    new: str
    updated_worktree: bool


@dataclass(frozen=True)
class CommitView:
    """One commit as a person reviews it. Raw sandbox text: callers sanitise before printing."""

    id: str
    author: str
    """``Name <email>``."""
    date: str
    """The author date in the author's time zone, ``2026-01-01 12:00:00 +0100``."""
    message: str
    patch: str
    """Against the first parent (against nothing for a root commit)."""


def _text(raw: bytes) -> str:
    """Sandbox bytes as text; an undecodable byte stays a lone surrogate, which ``sanitize`` shows as ``\\xNN``."""
    return raw.decode("utf-8", "surrogateescape")


class MergeConflict(AirlockError):
    def __init__(self, base: str, paths: list[str]) -> None:
        listing = "\n".join(f"  {p}" for p in paths)
        super().__init__(
            f"merging into {base} would conflict in {len(paths)} path(s):\n{listing}\n"
            "nothing was changed: your branch, index and working tree are as they were",
            hint="resolve in a scratch branch: `git switch -c tmp && git merge <sandbox branch>`, "
            "or ask the agent to rebase onto your branch",
        )
        self.paths = paths


class _ConflictCollector(pygit2.callbacks.CheckoutCallbacks):
    """Collects the paths a SAFE checkout refuses to overwrite."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def checkout_notify_flags(self) -> CheckoutNotify:
        return CheckoutNotify.CONFLICT

    def checkout_notify(
        self,
        why: CheckoutNotify,
        path: str,
        baseline: pygit2.DiffFile | None,
        target: pygit2.DiffFile | None,
        workdir: pygit2.DiffFile | None,
    ) -> None:
        self.paths.append(path)


class Repo:
    """A host repository opened with pygit2."""

    def __init__(self, location: RepoLocation) -> None:
        self.location = location
        try:
            self.git = pygit2.Repository(location.root)
        except pygit2.GitError as exc:
            raise AirlockError(f"cannot open the repository at {location.root}: {exc}") from exc

    # -- refs ---------------------------------------------------------------

    def current_branch(self) -> str | None:
        """The checked-out branch's short name; None when HEAD is detached."""
        if self.git.head_is_detached:
            return None
        try:
            target = self.git.lookup_reference("HEAD").target
        except (KeyError, pygit2.GitError):
            return None
        return target.removeprefix("refs/heads/") if isinstance(target, str) else None

    def ref_commit(self, refname: str) -> str | None:
        """The commit a ref peels to, as hex, or None when the ref does not exist."""
        try:
            ref = self.git.lookup_reference(refname)
            return str(ref.peel(pygit2.Commit).id)
        except (KeyError, pygit2.GitError, pygit2.InvalidSpecError, ValueError):
            return None

    def refs_under(self, prefix: str) -> dict[str, str]:
        """``{refname: commit hex}`` for every ref below ``prefix``."""
        found: dict[str, str] = {}
        for ref in self.git.references.iterator():
            name = ref.name
            if name.startswith(prefix) and not name.endswith("/HEAD"):
                commit = self.ref_commit(name)
                if commit:
                    found[name] = commit
        return found

    def remote_url(self, remote: str) -> str | None:
        try:
            return self.git.remotes[remote].url
        except (KeyError, pygit2.GitError, ValueError):
            return None

    def set_branch(self, branch: str, commit: str) -> None:
        """Create or move ``refs/heads/<branch>`` (refusing the checked-out branch)."""
        if branch == self.current_branch():
            raise AirlockError(
                f"branch {branch!r} is checked out; it will not be moved under your working tree",
                hint="pass another branch name",
            )
        self.git.create_reference(
            f"refs/heads/{branch}",
            pygit2.Oid(hex=commit),
            force=True,
            message="git-airlock: point at sandbox tip",
        )

    # -- history ------------------------------------------------------------

    def merge_base(self, a: str, b: str) -> str | None:
        if EMPTY_TREE in (a, b):
            return None
        oid = self.git.merge_base(pygit2.Oid(hex=a), pygit2.Oid(hex=b))
        return str(oid) if oid else None

    def diff(self, base: str, tip: str, stat: bool = False) -> str:
        """The patch (or ``--stat`` summary) between two commits.

        No textconv, filters or external diff: libgit2 runs none of them.
        """
        if base == EMPTY_TREE:
            diff = self.git[pygit2.Oid(hex=tip)].peel(pygit2.Tree).diff_to_tree(context_lines=3, swap=True)
        else:
            diff = self.git.diff(pygit2.Oid(hex=base), pygit2.Oid(hex=tip), context_lines=3)
        diff.find_similar()
        if stat:
            return diff.stats.format(DiffStatsFormat.FULL | DiffStatsFormat.INCLUDE_SUMMARY, 80)
        return diff.patch or ""

    def commit_view(self, commit: str) -> CommitView:
        """Author, date, full message and patch of one commit, read by libgit2 (no textconv, no filters)."""
        obj = self.git[pygit2.Oid(hex=commit)].peel(pygit2.Commit)
        if obj.parents:
            diff = self.git.diff(obj.parents[0], obj, context_lines=3)
        else:
            diff = obj.tree.diff_to_tree(context_lines=3, swap=True)
        diff.find_similar()
        author = obj.author
        when = datetime.fromtimestamp(author.time, timezone(timedelta(minutes=author.offset)))
        return CommitView(
            id=commit,
            author=f"{_text(author.raw_name)} <{_text(author.raw_email)}>",
            date=when.strftime("%Y-%m-%d %H:%M:%S %z"),
            message=_text(obj.raw_message),
            patch=diff.patch or "",
        )

    # -- merge --------------------------------------------------------------

    def _branch_checked_out_elsewhere(self, branch: str) -> str | None:
        """The path of another worktree that has ``branch`` checked out, if any."""
        here = os.path.realpath(self.location.root)
        for name in self.git.list_worktrees():
            try:
                path = self.git.lookup_worktree(name).path
                other = pygit2.Repository(path)
            except (pygit2.GitError, KeyError):
                continue
            if os.path.realpath(path) == here or other.head_is_detached:
                continue
            try:
                if other.lookup_reference("HEAD").target == f"refs/heads/{branch}":
                    return path
            except (KeyError, pygit2.GitError):
                continue
        main = self.location.main_root
        if os.path.realpath(main) != here:
            try:
                other = pygit2.Repository(main)
                if not other.head_is_detached and other.head.name == f"refs/heads/{branch}":
                    return main
            except pygit2.GitError:
                pass
        return None

    def merge(
        self, base: str, tip: str, message: str, no_ff: bool = False, verify: Callable[[str], None] | None = None
    ) -> MergeOutcome:
        """Merge commit ``tip`` into branch ``base``; change nothing at all on failure. ``no_ff``: a
        merge commit even where a fast-forward would do (it carries the provenance trailers).
        ``verify`` is given the resulting commit before anything moves; raising there stops it.

        Order matters for "nothing is lost": the merge is computed in memory;
        when ``base`` is checked out here, a SAFE checkout (which checks every
        path before writing any) updates index and working tree; only then does
        the branch ref move.
        """
        base_ref = f"refs/heads/{base}"
        old = self.ref_commit(base_ref)
        if old is None and self.current_branch() == base:
            if verify is not None:
                verify(tip)
            return self._first_commits(base_ref, tip)
        if old is None:
            raise AirlockError(f"base branch {base!r} does not exist", hint="`git branch --list` shows your branches")
        if old == tip or self.git.descendant_of(pygit2.Oid(hex=old), pygit2.Oid(hex=tip)):
            return MergeOutcome("up-to-date", old, old, False)
        elsewhere = self._branch_checked_out_elsewhere(base)
        if elsewhere:
            raise AirlockError(
                f"branch {base!r} is checked out in another worktree ({elsewhere})",
                hint=f"run the merge from that worktree: git -C {elsewhere} airlock merge",
            )
        checked_out = self.current_branch() == base
        if checked_out and self.git.head_is_unborn:
            raise AirlockError(f"branch {base!r} has no commits yet")

        kind: Literal["fast-forward", "merge"]
        if self.git.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=old)) and not no_ff:
            kind, new = "fast-forward", tip
        else:
            if self.git.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=old)):
                tree = self.git[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree_id
            else:
                index = self.git.merge_commits(pygit2.Oid(hex=old), pygit2.Oid(hex=tip))
                if index.conflicts is not None:
                    paths = sorted({entry.path for triple in index.conflicts for entry in triple if entry is not None})
                    raise MergeConflict(base, paths)
                tree = index.write_tree(self.git)
            signature = self._signature()
            new = str(
                self.git.create_commit(
                    None,
                    signature,
                    signature,
                    message,
                    tree,
                    [pygit2.Oid(hex=old), pygit2.Oid(hex=tip)],
                )
            )
            kind = "merge"

        if verify is not None:
            verify(new)
        if checked_out:
            self._checkout_safely(
                new,
                "your uncommitted changes would be overwritten by the merge",
                "commit or stash them (`git stash`), then run the merge again",
            )
        self.git.lookup_reference(base_ref).set_target(
            pygit2.Oid(hex=new),
            f"git-airlock merge: {kind}",
        )
        return MergeOutcome(kind, old, new, checked_out)

    def _first_commits(self, base_ref: str, tip: str) -> MergeOutcome:
        """Merge into the checked-out branch of a repository with no commits yet: check out ``tip``
        (refusing, before writing anything, if a file already there would be overwritten), then create
        the branch at it."""
        self._checkout_safely(
            tip,
            "files in your working tree would be overwritten by the merge",
            "move them away (or commit them first), then run the merge again",
        )
        self.git.create_reference(base_ref, pygit2.Oid(hex=tip))
        return MergeOutcome("fast-forward", EMPTY_TREE, tip, True)

    def _checkout_safely(self, commit: str, problem: str, hint: str) -> None:
        """Check out ``commit`` into index and working tree only if no path there would be overwritten
        (libgit2 checks every path before it writes any); otherwise refuse, naming the paths."""
        collector = _ConflictCollector()
        try:
            self.git.checkout_tree(
                self.git[pygit2.Oid(hex=commit)], strategy=CheckoutStrategy.SAFE, callbacks=collector
            )
        except pygit2.GitError as exc:
            paths = "\n".join(f"  {p}" for p in collector.paths) or f"  ({exc})"
            raise AirlockError(f"{problem}:\n{paths}\nnothing was changed", hint=hint) from exc

    def _signature(self) -> pygit2.Signature:
        try:
            return self.git.default_signature
        except (KeyError, pygit2.GitError):
            raise AirlockError(
                "git does not know who you are (user.name / user.email), so it cannot write a merge commit",
                hint='git config --global user.name "Your Name"; git config --global user.email you@example.com',
            ) from None
