"""What a list of commits changed, read with one ``git log`` call, for ``log`` and the hook."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from git_airlock.gitcmd import Git
from git_airlock.review import hostcode

_HEADER = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?\x1f")
_NULL = re.compile(r"^0+$")


@dataclass
class Change:
    path: str
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str


@dataclass
class CommitDetail:
    id: str
    author: str
    date: str
    subject: str
    changes: list[Change] = field(default_factory=list)
    host_code: list[tuple[str, str]] = field(default_factory=list)
    """(path, why it can run code on the host)."""

    @property
    def short(self) -> str:
        return self.id[:10]


def _parse(output: str) -> list[CommitDetail]:
    details: list[CommitDetail] = []
    tokens = output.split("\0")
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip("\n")
        i += 1
        if _HEADER.match(token):
            oid, author, date, subject = token.split("\x1f", 3)
            details.append(CommitDetail(oid, author, date, subject))
        elif token.startswith(":") and details and i < len(tokens):
            fields = token[1:].split(" ")
            path = tokens[i]
            i += 1
            if len(fields) >= 4:
                details[-1].changes.append(Change(path, fields[0], fields[1], fields[2], fields[3]))
    return details


def _blob_reader(git: Git, wanted: set[str]) -> dict[str, str]:
    """Contents of the few blobs whose content matters (package.json, pyproject.toml)."""
    return {oid: git.run("cat-file", "blob", oid, check=False) for oid in sorted(wanted)}


CONTENT_CHECKED = ("package.json", "pyproject.toml")


def describe(git: Git, commits: list[str]) -> list[CommitDetail]:
    """Details of ``commits`` in the order given, with their host-code findings."""
    if not commits:
        return []
    out = git.run(
        "log",
        "--stdin",
        "--no-walk=unsorted",
        "-z",
        "--no-renames",
        "--raw",
        "--no-abbrev",
        "--format=%H%x1f%an%x1f%aI%x1f%s",
        input="\n".join(commits) + "\n",
    )
    details = _parse(out)
    wanted = {
        blob
        for detail in details
        for change in detail.changes
        if change.path.rsplit("/", 1)[-1] in CONTENT_CHECKED
        for blob in (change.old_blob, change.new_blob)
        if not _NULL.match(blob)
    }
    blobs = _blob_reader(git, wanted)
    for detail in details:
        for change in detail.changes:
            reason = hostcode.path_reason(change.path, change.new_mode, change.old_mode) or hostcode.content_reason(
                change.path,
                functools.partial(blobs.get, change.old_blob),
                functools.partial(blobs.get, change.new_blob),
            )
            if reason:
                detail.host_code.append((change.path, reason))
    return details
