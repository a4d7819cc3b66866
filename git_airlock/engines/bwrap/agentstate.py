"""The agent's own state kept for the user across sandboxes (``airlock.keepAgentState``): one store per agent.

Under the user data directory, beside the sandboxes::

    agent-state/<agent>/<folder>   the agent's config folders (claude: ``.claude``), bound at ~/<folder>
    agent-state/ids.json           root only: the block of uids the stores belong to

Every sandbox made with the setting on gets its agent's folders from the store instead of its own
HOME, so a login, preferences and memory survive ``rm``. What one sandbox writes there the next one
reads: the store is agent-writable, hence hostile, exactly as a sandbox's HOME is, and the host only
writes into it through ``home.py`` (never through a link) and only lists it (never opens what is in it).

An ordinary user's sandboxes all map the same uids (the user's own and its subordinate range), so
the store is bound as it is. Each of root's sandboxes has a block of uids of its own, so the store
belongs to a block of its own too (reserved as a sandbox's is), and every sandbox sees it through a
writable id-mapped mount that shows the store's uids as its own (``enter.py --state``): nothing there
is ever owned by host uid 0.
"""

from __future__ import annotations

import json
import os
import stat
from typing import TYPE_CHECKING

from git_airlock.engines.bwrap import userns
from git_airlock.engines.bwrap.layout import SANDBOX_HOME, data_root
from git_airlock.jsonfile import write_json

if TYPE_CHECKING:
    from git_airlock.agents import Agent
    from git_airlock.engines.bwrap.layout import Paths

SNAPSHOT = "agent-state.json"
"""In a sandbox's folder: what its agent's store held when the sandbox was made (``report`` compares)."""
MAX_ENTRIES = 20000
"""Entries of a store listed at most: the agent could fill it with millions of files."""

Listing = dict[str, list[int]]
"""Path in the store -> [size, mtime in ns]; a folder's size is -1."""


def state_root() -> str:
    return os.path.join(os.path.dirname(data_root()), "agent-state")


class Store:
    """One agent's store: its folders, who owns them, and how a sandbox sees them."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.root = os.path.join(state_root(), agent.name)

    @property
    def folders(self) -> tuple[str, ...]:
        return self.agent.state

    # -- who owns it ---------------------------------------------------------------------------------

    def ids(self, dry_run: bool = False) -> userns.IdMap:
        """The uids the store belongs to: the user's own map, or root's block for stores (reserved once)."""
        if not userns.initial_root():
            return userns.for_user()
        record = os.path.join(state_root(), "ids.json")
        try:
            with open(record, encoding="utf-8") as handle:
                base = int(json.load(handle)["base"])
        except (OSError, ValueError, KeyError, TypeError):
            base = userns.reserve_block(state_root(), dry_run)
            if not dry_run:
                os.makedirs(state_root(), mode=0o700, exist_ok=True)
                write_json(record, {"base": base})
        block = ((0, base, userns.BLOCK),)
        return userns.IdMap(block, block, root=True)

    def create(self) -> None:
        """The store's folders, the store's uids' (a folder the agent replaced by a link is left to fail at
        the bind: bwrap refuses to bind through what is not a folder)."""
        owner = self.ids().chown
        os.makedirs(state_root(), mode=0o700, exist_ok=True)
        if not os.path.isdir(self.root):
            os.mkdir(self.root, 0o700)
            if owner is not None:  # only the host reaches this folder; the sandbox's bwrap passes through it
                os.lchown(self.root, *owner)
        for folder in self.folders:
            path = os.path.join(self.root, folder)
            if os.path.lexists(path):
                continue
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
            if owner is not None:
                for made in _made_below(self.root, path):
                    os.lchown(made, *owner)

    # -- how a sandbox sees it -----------------------------------------------------------------------

    def view(self, paths: Paths) -> str:
        """Where the sandbox's bwrap finds the store: an id-mapped view in its folder (root), or the store."""
        return os.path.join(paths.root, "agent-state") if userns.initial_root() else self.root

    def prepare(self, paths: Paths) -> None:
        """Before each start: the store's folders (an agent added since may have more), and where root's
        sandbox sees it."""
        self.create()
        os.makedirs(self.view(paths), mode=0o700, exist_ok=True)

    def entered(self, paths: Paths, dry_run: bool = False) -> dict[str, list[list[str]]]:
        """``enter.py``'s mount of the store (root): the store's block shown as the sandbox's."""
        if not userns.initial_root():
            return {}
        return {"state": [[self.root, self.view(paths), str(self.ids(dry_run).uid[0][1])]]}

    def binds(self, paths: Paths) -> list[str]:
        argv: list[str] = []
        for folder in self.folders:
            argv += ["--bind", os.path.join(self.view(paths), folder), f"{SANDBOX_HOME}/{folder}"]
        return argv

    def home_place(self, relative: str) -> str | None:
        """The store's folder that holds ``relative`` (a path under HOME), or None when HOME itself does."""
        for folder in self.folders:
            if relative == folder or relative.startswith(folder + "/"):
                return self.root
        return None

    # -- what a sandbox changed ----------------------------------------------------------------------

    def listing(self) -> Listing:
        """Every entry of the store by path, never following a link, at most ``MAX_ENTRIES``."""
        found: Listing = {}
        for folder in self.folders:
            _walk(self.root, folder, found)
        return found

    def remember(self, paths: Paths) -> None:
        """What the store holds as the sandbox is made: ``changes`` compares with it."""
        self.create()
        write_json(os.path.join(paths.root, SNAPSHOT), self.listing())

    def changes(self, paths: Paths) -> list[str]:
        """What changed in the store since the sandbox was made (by it, or by another sandbox meanwhile)."""
        try:
            with open(os.path.join(paths.root, SNAPSHOT), encoding="utf-8") as handle:
                before: Listing = json.load(handle)
        except (OSError, ValueError):
            before = {}
        now = self.listing()
        lines = [f"added {path}" for path in sorted(now.keys() - before.keys())]
        lines += [f"changed {path}" for path in sorted(now.keys() & before.keys()) if now[path] != before[path]]
        lines += [f"removed {path}" for path in sorted(before.keys() - now.keys())]
        return lines


def _walk(root: str, relative: str, found: Listing) -> None:
    if len(found) >= MAX_ENTRIES:
        return
    try:
        info = os.lstat(os.path.join(root, relative))
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode):
        found[relative + "/"] = [-1, 0]
        try:
            names = sorted(os.listdir(os.path.join(root, relative)))
        except OSError:
            return
        for name in names:
            _walk(root, f"{relative}/{name}", found)
    else:
        found[relative] = [info.st_size, info.st_mtime_ns]


def _made_below(root: str, path: str) -> list[str]:
    """``path`` and the folders between it and ``root``."""
    made, current = [], path
    while current != root and current.startswith(root + "/"):
        made.append(current)
        current = os.path.dirname(current)
    return made
