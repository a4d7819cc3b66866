"""Names derived from a repository: sandbox, git remote, tmux session.

Pure functions, no I/O. A sandbox name must satisfy sbx (letters, digits,
``-`` and ``.``; at most 63 characters; not ending in ``-`` or ``.``), be the
same from any subdirectory or worktree of one repository, and differ between
two repositories that merely share a folder name; so it is the folder name
plus a short hash of the repository's real path.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
_VALID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
_HASH_LEN = 8


def is_valid_sandbox_name(name: str) -> bool:
    """Whether sbx accepts ``name``."""
    return bool(_VALID.match(name))


def sandbox_name_problem(name: str) -> str | None:
    """Describe why ``name`` is not a valid sandbox name, or None when it is."""
    if not name:
        return "the sandbox name is empty"
    if len(name) > MAX_NAME:
        return f"the sandbox name {name!r} is longer than {MAX_NAME} characters"
    if _INVALID_CHARS.search(name):
        return f"the sandbox name {name!r} may only contain letters, digits, '-' and '.'"
    if not is_valid_sandbox_name(name):
        return f"the sandbox name {name!r} must start and end with a letter or digit"
    return None


def default_sandbox_name(repo_root: str) -> str:
    """``<folder>-<hash8>`` for the repository whose top-level directory is ``repo_root``."""
    folder = repo_root.rstrip("/").rsplit("/", 1)[-1]
    slug = _INVALID_CHARS.sub("-", folder).strip("-.").lower() or "repo"
    digest = hashlib.sha256(repo_root.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_LEN]
    slug = slug[: MAX_NAME - _HASH_LEN - 1].rstrip("-.")
    return f"{slug}-{digest}"


def remote_name(sandbox: str) -> str:
    """The host git remote that points at a sandbox's clone (sbx's own convention)."""
    return f"sandbox-{sandbox}"


def fetch_refspecs(sandbox: str) -> tuple[str, str]:
    """Where a sandbox's branches land on the host: its remote-tracking refs and sbx's recovery refs."""
    return (f"+refs/heads/*:refs/remotes/{remote_name(sandbox)}/*", f"+refs/heads/*:refs/sandboxes/{sandbox}/*")


def tmux_session_name(sandbox: str) -> str:
    """tmux forbids '.' and ':' in session names; sandbox names may contain '.'."""
    return f"git-airlock-{sandbox}".replace(".", "_")
