"""What the agent did while it wrote the commits under review: one report, in three forms.

For a range ``base..tip`` of one sandbox: the sandbox, engine, agent and network policy; each
commit with the files it changed and the ones that can run code here; and the sandbox's network
activity (blocked destinations first, credential endpoints marked). ``text`` is for the
terminal, ``markdown`` for a pull request's body, and ``as_json`` a stable document (README
lists its keys) with a digest to refer to it by.

Everything in it that the sandbox chose (subjects, paths, host names) is shown sanitised in text
and escaped in Markdown; the JSON keeps it as it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from git_airlock.netlog import Destination
from git_airlock.review.commitinfo import CommitDetail
from git_airlock.terminal import sanitize_line

if TYPE_CHECKING:
    from git_airlock.app import App
    from git_airlock.gitcmd import Git

SCHEMA = 1
"""Bumped when a key of the JSON form changes meaning or goes away."""


@dataclass(frozen=True)
class Report:
    sandbox: str
    engine: str
    agent: str
    policy: str
    base: str
    base_commit: str
    tip: str
    tip_commit: str
    commits: tuple[CommitDetail, ...]
    network: tuple[Destination, ...]
    settings: dict[str, tuple[str | None, str]]
    """``policy`` and ``presets``: (when the sandbox started, or None when unknown; now)."""
    claims: dict[str, tuple[str, ...]]
    """Review-like trailers the agent wrote into its own commit messages, by commit: its claims."""
    agent_state: tuple[str, ...] | None = None
    """What changed in the agent's state kept for the user since the sandbox was made (what the next sandbox
    reads); None when the sandbox does not use kept state."""

    @property
    def changed_settings(self) -> list[str]:
        return [
            f"{key}: {start or '(unset)'} -> {now or '(unset)'}"
            for key, (start, now) in self.settings.items()
            if start is not None and start != now
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "sandbox": self.sandbox,
            "engine": self.engine,
            "agent": self.agent,
            "policy": self.policy,
            "base": {"name": self.base, "commit": self.base_commit},
            "tip": {"ref": self.tip, "commit": self.tip_commit},
            "commits": [
                {
                    "id": detail.id,
                    "author": detail.author,
                    "author_date": detail.date,
                    "subject": detail.subject,
                    "files": [change.path for change in detail.changes],
                    "host_code": [{"path": path, "why": why} for path, why in detail.host_code],
                    "claims": list(self.claims.get(detail.id, ())),
                }
                for detail in self.commits
            ],
            "settings": {key: {"at_start": start, "now": now} for key, (start, now) in self.settings.items()},
            "agent_state": None if self.agent_state is None else list(self.agent_state),
            "network": {
                "destinations": [
                    {
                        "host": row.host,
                        "port": row.port,
                        "allowed": row.allowed,
                        "blocked": row.blocked,
                        "refused": row.refused,
                        "failed": row.failed,
                        "bytes": row.bytes,
                        "credentials": sorted(row.credentials),
                    }
                    for row in _ordered(self.network)
                ],
            },
        }

    @property
    def digest(self) -> str:
        """sha256 of the JSON form, keys sorted: what a provenance note points back to."""
        text = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def host_code_count(self) -> int:
        return sum(len(detail.host_code) for detail in self.commits)

    def summary(self) -> list[str]:
        """A few lines for ``review`` to show before the diff."""
        blocked = [row for row in self.network if row.blocked or row.refused]
        reached = [row for row in self.network if row.allowed]
        lines = [
            f"{self.sandbox} ({self.engine}, agent {self.agent or 'unknown'}, policy {self.policy}): "
            f"{len(self.commits)} commit(s), {self.host_code_count} change(s) to files that can run code here"
        ]
        failed = [row for row in self.network if row.failed and not row.allowed]
        network = f"network: {len(reached)} destination(s) reached, {len(failed)} failed, {len(blocked)} blocked"
        if blocked:
            network += ": " + ", ".join(sanitize_line(row.where) for row in _ordered(blocked)[:5])
        lines.append(network + ("" if self.network else " (no attempts logged)"))
        return lines

    def text(self) -> str:
        lines = [
            f"sandbox {self.sandbox}: engine {self.engine}, agent {self.agent or 'unknown'}, "
            f"network policy {self.policy}",
            f"range {sanitize_line(self.base)}..{sanitize_line(self.tip)} "
            f"({self.base_commit[:10]}..{self.tip_commit[:10]}): {len(self.commits)} commit(s)",
            "",
            "commits:",
        ]
        for detail in self.commits:
            lines.append(f"  {detail.short} {detail.date} {sanitize_line(detail.subject)}")
            lines += [f"      {sanitize_line(change.path)}" for change in detail.changes]
            lines += [f"    ! {sanitize_line(path)}: {why}" for path, why in detail.host_code]
            claims = self.claims.get(detail.id, ())
            lines += [f"    the agent's claim, not a review: {sanitize_line(claim)}" for claim in claims]
        changed = self.changed_settings
        lines += ["", "settings changed since the sandbox started:" if changed else "settings: unchanged since start"]
        lines += [f"  {sanitize_line(line)}" for line in changed]
        if self.agent_state is not None:
            lines += ["", f"agent state kept for you (the next sandbox reads it): {len(self.agent_state)} change(s)"]
            lines += [f"  {sanitize_line(line)}" for line in self.agent_state]
        lines += ["", "network:" if self.network else "network: no connection attempts logged"]
        for row in _ordered(self.network):
            lines.append(f"  {_verdict(row):<8} {sanitize_line(row.where):<40} {_counts(row)}{_credential(row)}")
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        lines = [
            f"### Sandbox `{_md(self.sandbox)}`",
            "",
            f"Engine **{self.engine}**, agent `{_md(self.agent or 'unknown')}`, network policy **{self.policy}**; "
            f"range `{_md(self.base)}..{_md(self.tip)}`, {len(self.commits)} commit(s).",
            "",
            "| commit | date | subject | files | runs code here |",
            "|---|---|---|---|---|",
        ]
        for detail in self.commits:
            files = "<br>".join(f"`{_md(change.path)}`" for change in detail.changes)
            risky = "<br>".join(f"`{_md(path)}`: {why}" for path, why in detail.host_code)
            claims = "".join(f"<br>_the agent's claim:_ `{_md(c)}`" for c in self.claims.get(detail.id, ()))
            lines.append(f"| {detail.short} | {detail.date} | `{_md(detail.subject)}`{claims} | {files} | {risky} |")
        lines += ["", "| network | destination | attempts | bytes |", "|---|---|---|---|"]
        for row in _ordered(self.network):
            lines.append(f"| {_verdict(row)}{_credential(row)} | `{_md(row.where)}` | {_attempts(row)} | {row.bytes} |")
        if not self.network:
            lines.append("| | no connection attempts logged | | |")
        changed = self.changed_settings
        if changed:
            lines += ["", "Settings changed since the sandbox started: " + "; ".join(f"`{_md(c)}`" for c in changed)]
        if self.agent_state:
            lines += [
                "",
                "Agent state kept for the next sandbox, changed: " + "; ".join(f"`{_md(c)}`" for c in self.agent_state),
            ]
        return "\n".join(lines) + "\n"


def _ordered(rows: tuple[Destination, ...] | list[Destination]) -> list[Destination]:
    """Blocked first, then failed, then the rest; busiest first within each."""

    def rank(row: Destination) -> tuple[int, int, str]:
        group = 0 if row.blocked or row.refused else 1 if row.failed else 2
        return (group, -(row.allowed + row.blocked + row.refused + row.failed), row.where)

    return sorted(rows, key=rank)


def _verdict(row: Destination) -> str:
    return "blocked" if row.blocked or row.refused else "failed" if row.failed else "allowed"


def _attempts(row: Destination) -> str:
    parts = [(row.allowed, "allowed"), (row.blocked, "blocked"), (row.refused, "refused"), (row.failed, "failed")]
    return ", ".join(f"{count} {word}" for count, word in parts if count)


def _counts(row: Destination) -> str:
    return f"{_attempts(row)}; {row.bytes} bytes"


def _credential(row: Destination) -> str:
    return f" (credential endpoint: {', '.join(sorted(row.credentials))})" if row.credentials else ""


def _md(text: str) -> str:
    """Sandbox text for a Markdown code span in a table cell: one line, sanitised, with what would end
    the span or the cell changed. Every such text goes in a code span, where no link, image, mention
    or heading renders."""
    return sanitize_line(text).replace("|", "\\|").replace("`", "'")


def build(app: App, base: str, base_commit: str, tip_ref: str, tip: str) -> Report:
    """The report of ``base..tip`` for this invocation's sandbox (fetched already).

    The network activity is the sandbox's whole life up to now (its log starts with it and goes
    with ``rm``): commit dates are the agent's to set, so they cannot bound a window the agent
    would want to hide requests from.
    """
    from git_airlock import netlog
    from git_airlock.gitcmd import EMPTY_TREE, Git
    from git_airlock.review import ledger
    from git_airlock.review.commitinfo import describe

    git = Git(app.location.root)
    fork = "" if base_commit == EMPTY_TREE else git.run("merge-base", base_commit, tip, check=False).strip()
    commits = list(reversed(git.rev_list([tip], [fork] if fork else [])))
    state = app.sandbox_state()
    start = ledger.started(git).get(app.sandbox, {})
    now = {"policy": app.settings.network_policy, "presets": app.settings.values["presets"]}
    entries = app.engine.connection_entries(app.runner, app.sandbox)
    mine = [entry for entry in entries if entry.get("sandbox") == app.sandbox]
    return Report(
        sandbox=app.sandbox,
        engine=app.engine.name,
        agent=state.agent if state else "",
        policy=app.settings.network_policy,
        base=base,
        base_commit=fork or base_commit,
        tip=tip_ref.removeprefix("refs/remotes/"),
        tip_commit=tip,
        commits=tuple(describe(git, commits)),
        network=tuple(netlog.summarize(mine)),
        settings={key: (start.get(key), value) for key, value in now.items()},
        claims=_claims(git, commits),
        agent_state=_tuple_or_none(app.engine.agent_state_changes(app.sandbox) if state else None),
    )


def _tuple_or_none(lines: list[str] | None) -> tuple[str, ...] | None:
    return None if lines is None else tuple(lines)


CLAIMED = ("reviewed-by", "acked-by", "tested-by", "approved-by", "assisted-by", "generated-by", "co-authored-by")
"""Trailers that would read as provenance if an agent's commit message were believed."""


def _claims(git: Git, commits: list[str]) -> dict[str, tuple[str, ...]]:
    """The provenance-like trailers of each commit's message, one ``git log`` for all of them."""
    if not commits:
        return {}
    out = git.run(
        "log",
        "--stdin",
        "--no-walk=unsorted",
        "--format=%H%x1f%(trailers:only,unfold)%x00",
        input="\n".join(commits) + "\n",
    )
    found = {}
    for record in out.split("\0"):
        commit, _, trailers = record.strip("\n").partition("\x1f")
        mine = tuple(line for line in trailers.splitlines() if line.split(":", 1)[0].strip().lower() in CLAIMED)
        if mine:
            found[commit] = mine
    return found
