"""Which two commits a command compares: the base branch and the sandbox's tip.

The sandbox names its own branches, so a tip is found only among the refs a fetch wrote, and
an unborn base (a repository with no commits yet) compares against the empty tree.
"""

from __future__ import annotations

from git_airlock.app import App
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import EMPTY_TREE


def resolve_base(app: App, base: str | None) -> str:
    """The base branch: the given one, or the checked-out branch."""
    if base:
        return base.removeprefix("refs/heads/")
    if app.dry_run and app.location_or_none is None:
        return "main"
    branch = app.repo.current_branch()
    if branch is None:
        raise AirlockError(
            "HEAD is detached, so there is no base branch to compare with", hint="name one: `git airlock diff main`"
        )
    return branch


def resolve_tip(app: App, base: str, sandbox_branch: str | None) -> tuple[str, str]:
    """``(ref name, commit)`` of the sandbox branch to use.

    Defaults to the sandbox branch named like the base (the clone follows the
    host's branch), else the only branch the sandbox has.
    """
    prefix = f"refs/remotes/{app.remote}/"
    branches = app.repo.refs_under(prefix)
    wanted = sandbox_branch or base
    ref = prefix + wanted
    if ref in branches:
        return ref, branches[ref]
    if sandbox_branch is None and len(branches) == 1:
        ((ref, commit),) = branches.items()
        return ref, commit
    if not branches:
        raise AirlockError(
            f"nothing fetched from sandbox {app.sandbox!r} yet",
            hint="let the agent commit, then run `git airlock fetch`",
        )
    listing = ", ".join(sorted(name[len(prefix) :] for name in branches))
    raise AirlockError(
        f"the sandbox has no branch {wanted!r} (it has: {listing})",
        hint="pick one with --sandbox-branch NAME",
    )


def base_commit(app: App, base: str) -> str:
    """The base branch's commit; git's empty tree for the checked-out branch of a repository with no
    commits yet (everything the sandbox made is new to it)."""
    commit = app.repo.ref_commit(f"refs/heads/{base}")
    if commit is None and app.repo.current_branch() == base:
        return EMPTY_TREE
    if commit is None:
        raise AirlockError(f"base branch {base!r} does not exist", hint="`git branch --list` shows your branches")
    return commit
