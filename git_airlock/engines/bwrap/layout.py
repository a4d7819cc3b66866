"""Where one bwrap sandbox lives on the host, whose it is, and who the agent is inside.

Under the user data directory (never in the repository)::

    sandboxes/<name>/clone/      private clone (alternates to the host's objects)
    sandboxes/<name>/home/       persistent HOME (agent logins and settings survive stop/up)
    sandboxes/<name>/upper/ work/ merged/   the overlay layer of the working tree
    sandboxes/<name>/lower/      root only: where the shared checkout is seen as the sandbox root's (id-mapped)
    sandboxes/<name>/source/     root only: where the host repository is seen as the sandbox root's, read-only
    sandboxes/<name>/system/     the layer of its own system (``system.py``)
    sandboxes/<name>/etc/        passwd/group for the host's sandboxes over it, the host repository's config as shown
    sandboxes/<name>/meta.json   what the sandbox was made from, which repository owns it, its id, its uid map
    sandboxes/<name>/agent-state.json, agent-state/   with kept agent state: the store as it was, its view

``clone/``, ``home/``, ``upper/`` and ``system/upper/`` are the agent's and therefore
hostile: the host never opens or runs git there itself (see ``clone.py`` and
``home.py``). The rest is written only by the host and never visible read-write inside.
Whatever the agent writes is owned by the sandbox's uids (``userns``), never by root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

from git_airlock.errors import AirlockError
from git_airlock.jsonfile import write_json

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; only the type checker reads this

SANDBOX_HOME = "/home/agent"
SANDBOX_USER = "root"
"""The agent is root of its own system inside (uid 0 of the sandbox's user namespace: an unprivileged
uid on the host). Its HOME stays /home/agent, the folder that persists across stop and up."""


def data_root() -> str:
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("git-airlock"), "sandboxes")


class SandboxMeta(TypedDict, total=False):
    """``meta.json``: what a sandbox was made from, and what was set for it since (older sandboxes lack keys)."""

    name: str
    id: str
    agent: str
    repo: str
    common_dir: str
    network: str | None
    """``lockdown`` after ``git airlock lockdown``; None: the configured policy."""
    layout: Literal["plain", "overlay"]
    lower: str
    """The overlay's lower layer (the shared checkout), for the overlay layout."""
    ids: dict[str, list[list[int]]]
    """The uid and gid maps (``userns.IdMap.to_meta``); older sandboxes get theirs at their next start."""
    system: Literal["overlay", "fuse", "none"]
    """How its own system layer is mounted (``system.py``); older sandboxes get one at their next start."""
    tmp_size: int
    extra_hosts: list[str]
    resolve: dict[str, str]
    service_urls: dict[str, str]
    allow: list[str] | None
    """The lockdown allowlist."""
    agent_state: bool
    """Its agent's folders come from the user's store (``agentstate.py``), as set when it was made."""


class Place(Protocol):
    """The host folders every sandbox of git-airlock needs, its own or shared: passwd/group, devices."""

    etc: str
    dev: str


class Paths:
    """Where one sandbox's pieces live on the host."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root = os.path.join(data_root(), name)
        self.clone = os.path.join(self.root, "clone")
        self.git_dir = os.path.join(self.clone, ".git")
        self.home = os.path.join(self.root, "home")
        self.etc = os.path.join(self.root, "etc")
        self.source_config = os.path.join(self.etc, "source-config")
        self.dev = os.path.join(self.root, "dev")
        self.meta = os.path.join(self.root, "meta.json")
        self.upper = os.path.join(self.root, "upper")
        self.work = os.path.join(self.root, "work")
        self.merged = os.path.join(self.root, "merged")
        self.lower_view = os.path.join(self.root, "lower")
        self.repo_view = os.path.join(self.root, "source")

    def exists(self) -> bool:
        return os.path.isfile(self.meta) and os.path.isdir(self.git_dir)

    def read_meta(self) -> SandboxMeta:
        try:
            with open(self.meta, encoding="utf-8") as handle:
                meta: SandboxMeta = json.load(handle)  # written by write_meta only
                return meta
        except (OSError, ValueError):
            return {}

    def write_meta(self, meta: SandboxMeta) -> None:
        write_json(self.meta, meta, indent=2)

    def remember(self, **values: Unpack[SandboxMeta]) -> None:
        self.write_meta({**self.read_meta(), **values})


def new_identity() -> str:
    """A sandbox's unique id, recorded at creation: its processes and gate are found by it, not by its name."""
    return uuid.uuid4().hex


def marker(name: str, meta: SandboxMeta) -> str:
    """The value that tags the sandbox's bwrap processes: ``name/id`` ('/' never occurs in a name).

    Sandboxes made before ids existed are tagged by their name alone."""
    return f"{name}/{meta['id']}" if meta.get("id") else name


def same_repository(meta: SandboxMeta, common_dir: str) -> bool:
    recorded = meta.get("common_dir") or ""
    return bool(recorded) and os.path.realpath(recorded) == os.path.realpath(common_dir)


def check_owner(name: str, meta: SandboxMeta, common_dir: str | None) -> None:
    """A sandbox name belongs to the repository that created it; refuse it to every other.

    A repository that no longer exists owns nothing: its sandbox can still be seen (and removed)
    from elsewhere, but not restarted (its clone borrows the vanished repository's objects).
    """
    if common_dir is None or not meta or same_repository(meta, common_dir):
        return
    owner = meta.get("repo") or meta.get("common_dir") or "another repository"
    if meta.get("common_dir") and not os.path.isdir(meta["common_dir"]):
        return
    raise AirlockError(
        f"sandbox {name!r} belongs to another repository ({owner})",
        hint="pick another name for this repository's sandbox with --name",
    )


def checkout_cache(tree: str) -> str:
    """A read-only checkout of one tree, shared by every sandbox made from it (the overlay's lower layer)."""
    return os.path.join(os.path.dirname(data_root()), "checkouts", tree)


def private_dir(path: str, owner: tuple[int, int] | None = None) -> None:
    """Make ``path`` a directory only this user (or ``owner``, a sandbox's root) can enter, refusing one
    somebody else prepared (the temporary directory is shared: another user could create the name first)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (os.getuid(), owner[0] if owner else os.getuid()):
        raise AirlockError(
            f"{path} is not a directory of yours",
            hint="remove it (another user or program created it), then start the sandbox again",
        )
    if owner:
        os.lchown(path, *owner)
    os.chmod(path, 0o700)


def make_dirs(paths: Paths) -> None:
    """The sandbox's folders, only this user's: one that already exists is tightened, not left as found."""
    for directory in (data_root(), paths.root, paths.home, paths.etc):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)


def write_identity(paths: Place) -> None:
    """passwd, group and git's trust for the sandboxes that see the system read-only (rewritten at every
    start, so older sandboxes follow): root (the sandbox's), uid 1000 (an offline sandbox's), nobody.

    The host repository is owned by a uid the sandbox does not know; its git would refuse it."""
    os.makedirs(paths.etc, mode=0o700, exist_ok=True)
    passwd = (
        f"root:x:0:0:root:{SANDBOX_HOME}:/bin/bash\n"
        f"agent:x:1000:1000:sandbox agent:{SANDBOX_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n"
    trust = "[safe]\n\tdirectory = *\n"
    for file, text in (("passwd", passwd), ("group", group), ("gitconfig", trust)):
        path = os.path.join(paths.etc, file)
        with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                continue
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


def make_removable(root: str) -> None:
    """overlayfs leaves a mode-000 directory in its work dir; make everything removable."""
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):  # another uid's (see userns.remove)
                    os.chmod(path, 0o700)


def remove_tree(root: str) -> None:
    if os.path.isdir(root):
        make_removable(root)
        shutil.rmtree(root, ignore_errors=True)
