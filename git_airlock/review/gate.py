"""The review gate: what stands between a sandbox's commits and your branches or your remote.

``merge`` and ``pr`` ask it what is coming in (commits nobody reviewed, files that can run code on
this machine) and tell it what the user vouched for; asking the user is theirs, so this module
never prompts. Review marks are written and taken back here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.plan import Step
from git_airlock.review import ledger
from git_airlock.terminal import sanitize

HOST_CODE = "these commits change files that can run code on this machine:"


@dataclass(frozen=True)
class Incoming:
    """What ``base..tip`` would bring: its commits, which of them nobody reviewed, and the
    ``!`` lines naming the files among them that can run code here."""

    commits: tuple[str, ...]
    unreviewed: frozenset[str]
    host_code: tuple[str, ...]


def inspect(git: Git, sandbox: str, base: str, tip: str) -> Incoming:
    """Look at ``base..tip`` of ``sandbox`` the way the gate does, before anything moves."""
    commits = tuple(git.rev_list([tip], [base]))
    if not commits:
        return Incoming((), frozenset(), ())
    unreviewed = frozenset(ledger.unreviewed(git, ledger.read(git), sandbox)) & frozenset(commits)
    return Incoming(commits, unreviewed, tuple(host_code_lines(git, base, tip)))


def host_code_lines(git: Git, base: str, tip: str) -> list[str]:
    """``!`` lines for commits in ``base..tip`` that change files able to run code on this machine,
    oldest commit first (paths sanitised: the sandbox names them)."""
    from git_airlock.review.commitinfo import describe

    return [
        f"  ! {detail.short} {sanitize(path)}: {why}"
        for detail in describe(git, list(reversed(git.rev_list([tip], [base]))))
        for path, why in detail.host_code
    ]


def mark_ref(sandbox: str, branch: str) -> str:
    """The ledger ref that records how far ``branch`` of ``sandbox`` was reviewed."""
    return f"{ledger.REVIEWED}{sandbox}/{branch}"


def mark(git: Git, sandbox: str, branch: str, tip: str) -> None:
    """Record ``tip`` (and everything under it) of the sandbox's ``branch`` as reviewed."""
    ledger.mark_reviewed(git, sandbox, branch, tip)


def mark_step(root: str, sandbox: str, branch: str, tip_ref: str) -> Step:
    """The mark as the plain git command a dry run prints."""
    return Step(("git", "-C", root, "update-ref", mark_ref(sandbox, branch), tip_ref))


@contextmanager
def marked_while(git: Git, sandbox: str, branch: str, tip: str) -> Iterator[None]:
    """Mark ``tip`` reviewed for the duration of the block; if the block fails, take it back.

    ``pr`` pushes inside this: marking first lets the pre-push hook (in ``block`` mode too) see
    that the user vouched for these commits, and taking the mark back when the push fails keeps
    "reviewed" meaning "reviewed, or pushed on the user's word".
    """
    ref = mark_ref(sandbox, branch)
    before = git.refs(ref).get(ref)
    mark(git, sandbox, branch, tip)
    try:
        yield
    except AirlockError:
        if before:
            git.update_ref(ref, before, "git-airlock: the push failed, mark restored")
        else:
            git.run("update-ref", "-d", ref)
        raise
