"""One view of every sandbox of this repository, whatever its engine: what ``ls`` shows.

Everything comes from the host: what ``up`` recorded (``airlocksandbox.<name>.*`` in the
repository's config), the refs fetches wrote, the engines' own listings and tmux. Nothing is
fetched, and no pygit2: git plumbing, the per-sandbox questions asked at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from git_airlock.app import App
from git_airlock.forecast import Outcome, merges
from git_airlock.gitcmd import Git
from git_airlock.review import ledger


@dataclass
class Row:
    """One sandbox as ``ls`` shows it."""

    name: str
    engine: str
    agent: str
    policy: str
    state: str
    """running, stopped, or gone (its refs are left over from a sandbox that no longer exists)."""
    tmux: str
    branch: str
    tip: str
    ahead: int = 0
    unreviewed: int = 0
    last_commit: int | None = None
    """Committer time of the tip (the agent's clock)."""
    conflicts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Against ``current`` (your branch) and each other sandbox: the paths that would conflict."""
    layer_bytes: int | None = None
    """What its own system layer takes on disk (what the agent installed); None without one."""

    @property
    def leftover(self) -> bool:
        return self.state == "gone"


CURRENT = "current"
"""The key of the forecast against your checked-out branch."""


def gather(app: App, forecast: bool = True) -> list[Row]:
    """Every sandbox of this repository, with the forecast of each merge when ``forecast``."""
    from git_airlock import tmux
    from git_airlock.engines import get_engine
    from git_airlock.naming import tmux_session_name

    git = Git(app.location.root)
    started = ledger.started(git)
    tips = sandbox_tips(git)
    branch = git.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
    head = git.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip()
    names = sorted(set(started) | set(tips))
    by_engine: dict[str, list[str]] = {}
    for name in names:
        by_engine.setdefault(started.get(name, {}).get("engine") or app.engine_choice[0], []).append(name)
    states = {}
    for engine_name, members in by_engine.items():
        states.update(get_engine(engine_name, app.location.common_dir).states(app.runner, members))
    sessions = tmux.sessions(app.runner)
    rows = []
    for name in names:
        record, state = started.get(name, {}), states.get(name)
        chosen = tips.get(name, {})
        pick = branch if branch in chosen else min(chosen, default="")
        tip, when = chosen.get(pick, ("", None))
        rows.append(
            Row(
                name=name,
                engine=record.get("engine") or app.engine_choice[0],
                agent=(state.agent if state else "") or record.get("agent", ""),
                policy=record.get("policy", ""),
                state=state.status if state else "gone",
                tmux=tmux_session_name(name) if tmux_session_name(name) in sessions else "",
                branch=pick,
                tip=tip,
                last_commit=when,
                layer_bytes=state.layer_bytes if state else None,
            )
        )
    _count(git, rows, head)
    if forecast:
        _forecast(git, rows, head)
    return rows


def sandbox_tips(git: Git) -> dict[str, dict[str, tuple[str, int | None]]]:
    """``{sandbox: {branch: (commit, committer time)}}`` from the refs fetches wrote."""
    out = git.run(
        "for-each-ref",
        "--format=%(refname) %(objectname) %(committerdate:unix)",
        ledger.REMOTES,
        ledger.SANDBOXES,
    )
    found: dict[str, dict[str, tuple[str, int | None]]] = {}
    for line in out.splitlines():
        ref, oid, when = line.rsplit(" ", 2)
        if ref.startswith(ledger.SANDBOXES):
            name, _, branch = ref[len(ledger.SANDBOXES) :].partition("/")
        elif ref.startswith(ledger.REMOTES + ledger.REMOTE_PREFIX):
            name, _, branch = ref[len(ledger.REMOTES) + len(ledger.REMOTE_PREFIX) :].partition("/")
        else:
            continue  # your own remotes
        if branch and branch != "HEAD":
            found.setdefault(name, {})[branch] = (oid, int(when) if when.isdigit() else None)
    return found


def _count(git: Git, rows: list[Row], head: str) -> None:
    """Commits ahead of your branch, and unreviewed ones, for every row at once."""
    with_tip = [row for row in rows if row.tip]
    calls = [["rev-list", "--count", row.tip, *([f"^{head}"] if head else [])] for row in with_tip]
    for row, out in zip(with_tip, git.run_many(calls), strict=True):
        row.ahead = int(out.strip() or 0)
    unreviewed = ledger.unreviewed_by_sandbox(git, ledger.read(git))
    for row in rows:
        row.unreviewed = len(unreviewed.get(row.name, []))


def _forecast(git: Git, rows: list[Row], head: str) -> None:
    """Each sandbox against your branch and against every other one (pairs asked once)."""
    with_tip = [row for row in rows if row.tip]
    pairs: list[tuple[Row, Row | None]] = [(row, None) for row in with_tip if head]
    pairs += [(a, b) for i, a in enumerate(with_tip) for b in with_tip[i + 1 :]]
    outcomes: list[Outcome] = merges(git, [(other.tip if other else head, row.tip) for row, other in pairs])
    for (row, other), outcome in zip(pairs, outcomes, strict=True):
        if other is None:
            row.conflicts[CURRENT] = outcome.paths
        else:
            row.conflicts[other.name] = outcome.paths
            other.conflicts[row.name] = outcome.paths


def conflicts_ahead(git: Git, sandbox: str, tip: str, branch: str) -> dict[str, tuple[str, ...]]:
    """Which other sandboxes' pending work on ``branch`` (or their only branch) would conflict with
    ``tip`` once it is merged, and where: what ``merge`` warns about before it merges."""
    others = {}
    for name, branches in sandbox_tips(git).items():
        chosen = branches.get(branch) or (next(iter(branches.values())) if len(branches) == 1 else None)
        if name != sandbox and "@" not in name and chosen and chosen[0] != tip:
            others[name] = chosen[0]
    outcomes = merges(git, [(tip, other) for other in others.values()])
    return {name: outcome.paths for name, outcome in zip(others, outcomes, strict=True) if outcome.paths}


def queue_order(rows: list[Row]) -> list[Row]:
    """The order ``merge --all`` takes sandboxes in: those that merge cleanly into your branch first,
    then those that conflict with fewer of the others waiting, then the oldest work first."""
    names = {row.name for row in rows}

    def key(row: Row) -> tuple[bool, int, int, str]:
        clashes = sum(1 for other, paths in row.conflicts.items() if other in names and paths)
        return (bool(row.conflicts.get(CURRENT)), clashes, row.last_commit or 0, row.name)

    return sorted(rows, key=key)
