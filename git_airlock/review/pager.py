"""Reviewing in the terminal: each commit in order, through the pager.

Where no graphical difftool can start (SSH sessions, cloud VMs and CI
runners, which is where the bwrap engine lives) a review must still be
possible, and whoever reviewed in the terminal must not need a GUI. Each
commit of the range, oldest first, shows its id, author, date, full message,
the files it changes that can run code on this machine (the ``!`` lines `log`
and `merge` print) and its patch against its first parent, all in git's pager.

Everything shown is sandbox text: it is sanitised, and the patches come from
libgit2, which runs no textconv, filter driver or external diff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_airlock.gitcmd import Git
from git_airlock.review.commitinfo import describe
from git_airlock.terminal import colorize_patch, is_terminal, page, sanitize, sanitize_line

if TYPE_CHECKING:
    from git_airlock.repo import CommitView, Repo

BOLD, YELLOW, RED = "\x1b[1m", "\x1b[33m", "\x1b[1;31m"


def _paint(style: str, text: str, color: bool) -> str:
    return f"{style}{text}\x1b[m" if color else text


def commits(git: Git, fork: str, tip: str) -> list[str]:
    """The commits of ``fork..tip``, every parent before its children."""
    return git.run("rev-list", "--topo-order", "--reverse", tip, f"^{fork}").split()


def _commit(view: CommitView, number: int, total: int, host_code: list[tuple[str, str]], color: bool) -> str:
    lines = [
        "",
        _paint(YELLOW, f"commit {number}/{total} {view.id}", color),
        f"Author: {sanitize_line(view.author)}",
        f"Date:   {view.date}",
        "",
        *(f"    {line}".rstrip() for line in sanitize(view.message).rstrip("\n").split("\n")),
        "",
    ]
    if host_code:
        lines.append("    changes files that can run code on this machine:")
        lines += [_paint(RED, f"  ! {sanitize_line(path)}: {why}", color) for path, why in host_code]
        lines.append("")
    patch = sanitize(view.patch)
    return "\n".join(lines) + "\n" + (colorize_patch(patch) if color else patch)


def render(repo: Repo, git: Git, ids: list[str], title: str, color: bool) -> str:
    """The whole review as one text: a title line, then every commit."""
    host_code = {detail.id: detail.host_code for detail in describe(git, ids)}
    parts = [_paint(BOLD, sanitize_line(title), color) + "\n"]
    for number, oid in enumerate(ids, 1):
        parts.append(_commit(repo.commit_view(oid), number, len(ids), host_code.get(oid, []), color))
    return "".join(parts)


def show(repo: Repo, git: Git, fork: str, tip: str, label: str, base: str) -> None:
    """Page every commit of ``fork..tip`` (``label`` names the sandbox branch, ``base`` the host's)."""
    ids = commits(git, fork, tip)
    title = f"{label}: {len(ids)} commit(s) not in {base}, oldest first"
    page(render(repo, git, ids, title, color=is_terminal()))
