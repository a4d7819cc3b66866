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
from collections import deque
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
MAX_DEPTH = 32
"""Folders deep a store is listed (a deeper one is counted, not entered)."""
COMPLETE = "/complete"
"""A key no path can be: present in a listing that holds all of the store."""

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

    def holds(self, relative: str) -> bool:
        """Whether ``relative`` (a path under HOME) lies in one of the store's folders rather than in HOME."""
        return any(relative == folder or relative.startswith(folder + "/") for folder in self.folders)

    # -- what a sandbox changed ----------------------------------------------------------------------

    def listing(self) -> Listing:
        """Every entry of the store by path (``COMPLETE`` says whether all of it was listed)."""
        return _listing(self.root, self.folders)

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
        complete = COMPLETE in now and COMPLETE in before
        now.pop(COMPLETE, None)
        before.pop(COMPLETE, None)
        lines = [f"added {path}" for path in sorted(now.keys() - before.keys())]
        lines += [f"changed {path}" for path in sorted(now.keys() & before.keys()) if now[path] != before[path]]
        lines += [f"removed {path}" for path in sorted(before.keys() - now.keys())]
        if not complete:
            lines.append(
                f"not all of it compared: it holds more than {MAX_ENTRIES} entries or folders deeper than "
                f"{MAX_DEPTH}; take the whole store as changed"
            )
        return lines


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _listing(root: str, folders: tuple[str, ...]) -> Listing:
    """The store's entries, breadth first (a flood deep down cannot push out what lies near the top),
    at most ``MAX_ENTRIES`` and ``MAX_DEPTH`` deep, each folder opened without following a link, so a
    link swapped in for a folder while it is listed leads nowhere."""
    found: Listing = {}
    queue = deque((folder, 0) for folder in folders)
    complete = True
    while queue:
        relative, depth = queue.popleft()
        fd = _open_below(root, relative)
        if fd is None:
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if len(found) >= MAX_ENTRIES:
                        complete = False
                        break
                    path = f"{relative}/{entry.name}"
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        found[path + "/"] = [-1, 0]
                        if depth + 1 < MAX_DEPTH:
                            queue.append((path, depth + 1))
                        else:
                            complete = False
                    else:
                        found[path] = [info.st_size, info.st_mtime_ns]
        finally:
            os.close(fd)
        if not complete and len(found) >= MAX_ENTRIES:
            break
    if complete:
        found[COMPLETE] = [0, 0]
    return found


def _open_below(root: str, relative: str) -> int | None:
    """A descriptor of ``root/relative``, each step taken without following a link; None if it is not a folder."""
    try:
        fd = os.open(root, _FOLDER)
    except OSError:
        return None
    for part in relative.split("/"):
        try:
            step = os.open(part, _FOLDER, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = step
    return fd


def _made_below(root: str, path: str) -> list[str]:
    """``path`` and the folders between it and ``root``."""
    made, current = [], path
    while current != root and current.startswith(root + "/"):
        made.append(current)
        current = os.path.dirname(current)
    return made
