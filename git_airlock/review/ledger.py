"""The review ledger: which sandbox commits a person has reviewed.

Host-only refs record it: ``refs/airlock/reviewed/<sandbox>/<branch>`` (the
last tip reviewed) and ``refs/airlock/base/<sandbox>`` (the commit the sandbox
started from). Fetch refspecs only ever write ``refs/remotes/sandbox-*``,
``refs/sandboxes/*`` and (saving uncommitted work) ``refs/airlock/wip/<sandbox>/<time>/*``,
so no sandbox can forge a mark; removing a sandbox or its remote leaves the
ledger alone.

Unreviewed commits of a sandbox are those reachable from its tips (both
``refs/remotes/sandbox-<name>/*`` and sbx's ``refs/sandboxes/<name>/*``, which
survive ``sbx rm``, and its saved uncommitted work ``refs/airlock/wip/<name>/*``,
listed as branches ``wip/<time>/...``), minus its base, minus every reviewed mark. Each sandbox
is computed on its own so that one sandbox's base never hides another's
commits that were merged without review.

Everything here uses git plumbing (:mod:`git_airlock.gitcmd`), not pygit2,
because the pre-push hook runs it on every push.
"""

from __future__ import annotations

import os

from git_airlock.gitcmd import Git

REVIEWED = "refs/airlock/reviewed/"
BASE = "refs/airlock/base/"
REMOTES = "refs/remotes/"
SANDBOXES = "refs/sandboxes/"
WIP = "refs/airlock/wip/"
NOTES = "refs/notes/airlock"
"""Provenance notes (written by ``merge`` and ``pr``, see review.provenance)."""
REMOTE_PREFIX = "sandbox-"


class Sandbox:
    """A sandbox as the ledger sees it (plain classes: dataclasses cost the hook 5 ms to import)."""

    __slots__ = ("base", "name", "tips")

    def __init__(self, name: str) -> None:
        self.name = name
        self.tips: dict[str, set[str]] = {}
        """branch -> tip commits (from refs/remotes/sandbox-<name>/ and refs/sandboxes/<name>/)."""
        self.base: str | None = None


class Ledger:
    __slots__ = ("public", "reviewed", "sandboxes")

    def __init__(self, sandboxes: dict[str, Sandbox], reviewed: dict[tuple[str, str], str], public: list[str]):
        self.sandboxes = sandboxes
        self.reviewed = reviewed
        self.public = public
        """Tips of ordinary remote-tracking branches: the fallback base when none was recorded."""

    def reviewed_ids(self) -> list[str]:
        return sorted(set(self.reviewed.values()))

    def exclusions(self, sandbox: Sandbox) -> list[str]:
        base = [sandbox.base] if sandbox.base else self.public
        return [*base, *self.reviewed_ids()]


def read(git: Git) -> Ledger:
    """Everything the ledger needs, from one ``git for-each-ref``."""
    sandboxes: dict[str, Sandbox] = {}
    reviewed: dict[tuple[str, str], str] = {}
    public: list[str] = []
    bases: dict[str, str] = {}

    def tip(name: str, branch: str, oid: str) -> None:
        sandboxes.setdefault(name, Sandbox(name)).tips.setdefault(branch, set()).add(oid)

    for ref, oid in git.refs(REMOTES, SANDBOXES, "refs/airlock/").items():
        if ref.startswith(REMOTES):
            remote, _, branch = ref[len(REMOTES) :].partition("/")
            if not branch or branch == "HEAD":
                continue
            if remote.startswith(REMOTE_PREFIX):
                tip(remote[len(REMOTE_PREFIX) :], branch, oid)
            else:
                public.append(oid)
        elif ref.startswith(SANDBOXES):
            name, _, branch = ref[len(SANDBOXES) :].partition("/")
            if branch:
                tip(name, branch, oid)
        elif ref.startswith(REVIEWED):
            name, _, branch = ref[len(REVIEWED) :].partition("/")
            if branch:
                reviewed[(name, branch)] = oid
        elif ref.startswith(BASE):
            bases[ref[len(BASE) :]] = oid
        elif ref.startswith(WIP):
            name, _, rest = ref[len(WIP) :].partition("/")
            if rest:
                tip(name, f"wip/{rest}", oid)
    for name, oid in bases.items():
        if name in sandboxes:
            sandboxes[name].base = oid
    return Ledger(sandboxes, reviewed, public)


def unreviewed(git: Git, ledger: Ledger, name: str, branch: str | None = None) -> list[str]:
    """Unreviewed commits of sandbox ``name`` (one branch, or all), newest first."""
    sandbox = ledger.sandboxes.get(name)
    if sandbox is None:
        return []
    tips = sandbox.tips.get(branch, set()) if branch else set().union(*sandbox.tips.values())
    return git.rev_list(sorted(tips), ledger.exclusions(sandbox))


def unreviewed_by_sandbox(git: Git, ledger: Ledger) -> dict[str, list[str]]:
    """``{sandbox: unreviewed commits}`` for every sandbox, asked of git in parallel."""
    names = sorted(ledger.sandboxes)
    calls = []
    for name in names:
        sandbox = ledger.sandboxes[name]
        tips = sorted(set().union(*sandbox.tips.values()))
        calls.append(["rev-list", *tips, "--not", *ledger.exclusions(sandbox)])
    return {name: out.split() for name, out in zip(names, git.run_many(calls), strict=True)}


STARTED = "airlocksandbox."
"""git config section (host-only, in the repository's .git/config) where ``up`` remembers how each
sandbox started: its agent, network policy and presets."""


def started_key(sandbox: str, key: str) -> str:
    return f"{STARTED}{sandbox}.{key}"


def started(git: Git) -> dict[str, dict[str, str]]:
    """What ``up`` remembered about how each sandbox started (``agent``, ``engine``, ``policy``,
    ``presets``), by sandbox name, from one git call."""
    out = git.run("config", "--get-regexp", rf"^{STARTED.rstrip('.')}\.", check=False)
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        name, _, item = key[len(STARTED) :].rpartition(".")
        found.setdefault(name, {})[item] = value
    return found


def agent_of(known: dict[str, dict[str, str]], sandbox: str) -> str | None:
    """The agent ``up`` recorded for ``sandbox``; a retired ``<name>@<time>`` goes by its name."""
    return (known.get(sandbox) or known.get(sandbox.partition("@")[0]) or {}).get("agent")


def mark_reviewed(git: Git, name: str, branch: str, tip: str) -> None:
    git.update_ref(f"{REVIEWED}{name}/{branch}", tip, f"git-airlock: reviewed {name}/{branch}")


def record_base(git: Git, name: str, commit: str) -> None:
    git.update_ref(f"{BASE}{name}", commit, f"git-airlock: sandbox {name} started here")


def ensure_base(git: Git, name: str, branch_tip: str, host_commit: str | None) -> None:
    """Record a base for a sandbox started without one: where its branch forked from the host."""
    if git.refs(f"{BASE}{name}") or host_commit is None:
        return
    fork = git.run("merge-base", branch_tip, host_commit, check=False).strip()
    if fork:
        record_base(git, name, fork)


def retire(git: Git, name: str, stamp: str) -> str | None:
    """Move what an earlier sandbox called ``name`` left in the ledger to ``<name>@<stamp>``, so that a
    new sandbox of that name starts with no commits of its own; returns that new name, or None when
    there was nothing to move.

    Its branches (``refs/sandboxes/<name>/*``, and remote-tracking refs a removal left behind), its
    base and its reviewed marks move together, so its unreviewed work stays unreviewed, is listed
    under the new name and still makes the pre-push hook warn. ``@`` never occurs in a sandbox name,
    so the archive never collides with a real sandbox."""
    remote = f"{REMOTES}{REMOTE_PREFIX}{name}/"
    found = git.refs(f"{SANDBOXES}{name}/", remote, f"{REVIEWED}{name}/", f"{BASE}{name}", f"{WIP}{name}/")
    tips = [ref for ref in found if not ref.startswith(REVIEWED) and not ref.startswith(BASE)]
    if not tips:
        return None
    retired = f"{name}@{stamp}"
    moves: dict[str, str] = {}
    for ref, oid in sorted(found.items(), key=lambda item: not item[0].startswith(SANDBOXES)):
        if ref.startswith(remote):
            target = f"{SANDBOXES}{retired}/{ref[len(remote) :]}"
        elif ref == f"{BASE}{name}":
            target = f"{BASE}{retired}"
        else:
            prefix = next(p for p in (SANDBOXES, REVIEWED, WIP) if ref.startswith(p))
            target = f"{prefix}{retired}/{ref[len(prefix) + len(name) + 1 :]}"
        moves.setdefault(target, oid)  # a branch fetched into both places: its refs/sandboxes copy wins
    commands = [f"create {target} {oid}\n" for target, oid in moves.items()]
    commands += [f"delete {ref} {oid}\n" for ref, oid in found.items()]
    git.run("update-ref", "-m", f"git-airlock: retire sandbox {name}", "--stdin", input="".join(commands))
    return retired


# -- patch ids: a rebased or cherry-picked copy of an unreviewed commit is still unreviewed --


def _cache_path(git: Git) -> str:
    import hashlib

    from platformdirs import user_cache_dir

    key = hashlib.sha256(os.path.realpath(git.root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(user_cache_dir("git-airlock"), "patch-ids", key)


def patch_ids(git: Git, commits: list[str], cache: bool = False) -> dict[str, str]:
    """``{commit: stable patch id}``; merges and empty commits have none.

    Patch ids of sandbox commits never change, so with ``cache`` they are kept
    in the user cache directory between pushes.
    """
    known: dict[str, str] = {}
    path = _cache_path(git) if cache else None
    if path:
        try:
            with open(path, encoding="ascii") as handle:
                for line in handle:
                    oid, _, pid = line.strip().partition(" ")
                    if pid:
                        known[oid] = pid
        except (OSError, ValueError):
            known = {}
    missing = [c for c in commits if c not in known]
    if missing:
        patches = git.run(
            "diff-tree",
            "--stdin",
            "-p",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            input="\n".join(missing) + "\n",
        )
        computed = git.run("patch-id", "--stable", input=patches) if patches else ""
        fresh = {}
        for line in computed.splitlines():
            pid, _, oid = line.partition(" ")
            fresh[oid] = pid
        none = {c: "" for c in missing if c not in fresh}  # merges/empty: remember there is none
        known.update(fresh)
        known.update(none)
        if path:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "a", encoding="ascii") as handle:
                    handle.writelines(f"{oid} {pid or '-'}\n" for oid, pid in {**fresh, **none}.items())
            except OSError:
                pass
    return {c: known[c] for c in commits if known.get(c) not in (None, "", "-")}
