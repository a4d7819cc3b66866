"""Who made each sandbox commit and who let it in: git notes, and trailers on a merge commit.

When ``merge`` or ``pr`` lands sandbox commits, each gets a note under ``refs/notes/airlock``
(``git log --notes=airlock`` shows it): the agent, sandbox, engine and policy, who reviewed it and
when, how it landed, and the digest of the review report. A merge commit also carries
``Assisted-by:`` and ``Reviewed-by:`` trailers. All of it is written on the host from the host's
own records; nothing an agent writes (a ``Reviewed-by:`` in its own commit message included) is
ever taken for provenance.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from git_airlock.gitcmd import Git
from git_airlock.review import ledger

if TYPE_CHECKING:
    from git_airlock.app import App

NOTES_REF = ledger.NOTES


def identity(git: Git) -> str:
    """``Name <email>`` of the user (git's committer identity, as a merge commit would carry)."""
    ident = git.run("var", "GIT_COMMITTER_IDENT").strip()
    return ident.rsplit(" ", 2)[0]


def note_text(fields: dict[str, str]) -> str:
    return "git-airlock provenance\n" + "".join(f"{key}: {value}\n" for key, value in fields.items())


def fields(
    *,
    agent: str,
    sandbox: str,
    engine: str,
    policy: str,
    reviewer: str | None,
    landed: str,
    report_digest: str,
) -> dict[str, str]:
    """The note's fields; ``reviewer`` None: let in unreviewed (``airlock.requireReview false``)."""
    return {
        "agent": agent or "unknown",
        "sandbox": sandbox,
        "engine": engine,
        "policy": policy,
        "reviewed-by": reviewer or "nobody (let in unreviewed: airlock.requireReview false)",
        "reviewed-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if reviewer else "-",
        "landed": landed,
        "report": report_digest,
    }


def record(git: Git, commits: Iterable[str], text: str) -> None:
    """Attach ``text`` as the ``refs/notes/airlock`` note of every commit, in one notes commit
    (``git fast-import``: one process however many commits; a note already there is replaced)."""
    commits = list(commits)
    if not commits:
        return
    ident = git.run("var", "GIT_COMMITTER_IDENT").strip()
    parent = git.refs(NOTES_REF).get(NOTES_REF)
    message = f"git-airlock: provenance of {len(commits)} commit(s)\n".encode()
    body = text.encode()
    stream = [f"commit {NOTES_REF}\ncommitter {ident}\ndata {len(message)}\n".encode() + message]
    if parent:
        stream.append(f"from {parent}\n".encode())
    for commit in commits:
        stream.append(f"N inline {commit}\ndata {len(body)}\n".encode() + body)
    stream.append(b"\n")
    git.run("fast-import", "--quiet", input=b"".join(stream).decode())


def trailers(agent: str, sandbox: str, reviewer: str | None) -> str:
    """The trailer block of a merge commit that lands a sandbox's work."""
    lines = [f"Assisted-by: {agent or 'an agent'} via git-airlock (sandbox {sandbox})"]
    if reviewer:
        lines.append(f"Reviewed-by: {reviewer}")
    return "\n".join(lines)


class Landing:
    """What `merge` and `pr` record about the sandbox commits they land (see review.provenance)."""

    def __init__(self, app: App, base: str, base_id: str, tip_ref: str, tip: str, vouched: bool) -> None:
        from git_airlock.review import report

        self.app, self.git = app, Git(app.location.root)
        self.commits = self.git.rev_list([tip], [base_id])
        self.report = report.build(app, base, base_id, tip_ref, tip)
        self.reviewer = identity(self.git) if vouched else None

    def trailers(self) -> str:
        return trailers(self.report.agent, self.app.sandbox, self.reviewer)

    def record(self, landed: str) -> None:
        """Note every commit landed (``landed`` says how: "merge into main", "pushed to ...")."""
        text = note_text(
            fields(
                agent=self.report.agent,
                sandbox=self.app.sandbox,
                engine=self.report.engine,
                policy=self.report.policy,
                reviewer=self.reviewer,
                landed=landed,
                report_digest=self.report.digest,
            )
        )
        record(self.git, self.commits, text)
