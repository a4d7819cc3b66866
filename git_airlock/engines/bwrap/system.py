"""The sandbox's own system: a copy-on-write layer over the host's, of which the agent is root.

Each sandbox keeps, under its data folder, the layers of the system it sees::

    system/upper/<top>/   what the agent changed in /usr (and /bin, /lib... where those are folders)
                          and /etc; its own /opt and /var: the agent's, like the rest of upper/
    system/state/var/...  what it changed of the package manager's state (/var/lib/dpkg, /var/lib/apt,
                          /var/cache/apt), the only parts of the host's /var it sees
    system/work/<name>/   overlayfs's own scratch, one per layer
    system/lower/<name>/  root only: an id-mapped, read-only view of what the layer lies over
    system/mnt/<name>/    where each layered folder is mounted, for bwrap to bind
    system/made-over      the host's package database as it was when the layer was made

``/etc`` lies over a copy of what the sandbox may see of the host's (``etcview``), never over
the live folder; ``/opt`` and the rest of ``/var`` are the sandbox's own. The id-mapped views
map the host's system accounts (uids below 1000) to the sandbox's, and no person's uid: a
person's files there stay theirs, readable only as anybody's are.

The layer survives ``stop``/``up`` and goes with ``rm``; nothing else sees it. Where no
layer can be mounted (an ordinary user without ``fuse-overlayfs``, a file system without
id-mapped mounts), the system is read-only as it was, and ``doctor`` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import Literal

from git_airlock.engines.bwrap import etcview
from git_airlock.engines.bwrap.userns import IdMap

Mode = Literal["overlay", "fuse", "none"]
LAYERED = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top folders over the host's; each that is a real folder on the host gets a layer (links stay links)."""
OWN = ("opt", "var")
"""Top folders of the sandbox's own: nothing of the host's shows there but the package manager's state."""
PACKAGE_STATE = ("var/lib/dpkg", "var/lib/apt", "var/cache/apt")
"""Where apt and dpkg keep their state: layers over the host's, so that apt inside knows what is installed."""
OWN_FOLDERS = ("var/log", "var/tmp", "var/spool", "var/mail", "var/backups", "var/local")
OWN_LINKS = {"var/run": "/run", "var/lock": "/run/lock"}
PACKAGE_DATABASE = "/var/lib/dpkg/status"
OPAQUE = "user.overlay.opaque"
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def layered_dirs() -> list[str]:
    """The top folders that lie over the host's: those that are real folders on this host."""
    return [top for top in LAYERED if os.path.isdir(f"/{top}") and not os.path.islink(f"/{top}")]


def _flat(relative: str) -> str:
    return relative.replace("/", "-")


class Layer:
    """Where one sandbox's system layer lives, and how it is mounted."""

    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "system")
        self.upper = os.path.join(self.root, "upper")
        self.state = os.path.join(self.root, "state")
        self.work = os.path.join(self.root, "work")
        self.lower = os.path.join(self.root, "lower")
        self.mnt = os.path.join(self.root, "mnt")
        self.made_over = os.path.join(self.root, "made-over")

    def exists(self) -> bool:
        return os.path.isdir(self.upper)

    def layers(self) -> list[tuple[str, str, str]]:
        """Each layered folder: (its path inside, its upper folder, the name of its work/lower/mnt folders)."""
        found = [(f"/{top}", os.path.join(self.upper, top), top) for top in [*layered_dirs(), "etc"]]
        found += [
            (f"/{part}", os.path.join(self.state, part), _flat(part))
            for part in PACKAGE_STATE
            if os.path.isdir(f"/{part}")
        ]
        return found

    # -- making it ------------------------------------------------------------------------------------

    def create(self, ids: IdMap, hostname: str) -> None:
        """The empty layer, before the agent ever ran: its folders, its own users, and what it was made over."""
        self._folders(ids)
        for top in OWN:
            os.makedirs(os.path.join(self.upper, top), mode=0o755, exist_ok=True)
        for relative in (*OWN_FOLDERS, *PACKAGE_STATE):
            os.makedirs(os.path.join(self.upper, relative), mode=0o755, exist_ok=True)
        for relative, target in OWN_LINKS.items():
            os.symlink(target, os.path.join(self.upper, relative))
        os.chmod(self.root, 0o700)
        _write_identity(os.path.join(self.upper, "etc"), ids, hostname)
        for folder in (self.upper, self.state, self.work):
            _give(ids, folder)
        with open(self.made_over, "w", encoding="utf-8") as handle:
            handle.write(host_packages())

    def _folders(self, ids: IdMap) -> None:
        """Each layer's upper, work, lower and mount folders (those the host gained since are made too)."""
        for _, upper, name in self.layers():
            for folder in (upper, *(os.path.join(base, name) for base in (self.work, self.mnt, self.lower))):
                if not os.path.lexists(folder):
                    os.makedirs(folder, mode=0o755)
                    if ids.chown and not folder.startswith((self.mnt, self.lower)):
                        os.lchown(folder, *ids.chown)

    def refresh(self, ids: IdMap, mode: Mode) -> None:
        """Before each start: the copy of /etc it lies over made, the folders of a layer the host gained since,
        and, through fuse-overlayfs (which copies up as the user), the package manager's files only root may
        read (its lock files) hidden: the sandbox makes its own.

        The layer is the agent's: every step in it goes through a descriptor opened without following a
        link, and an entry it made itself is left as it is."""
        etcview.ensure(etcview.current())
        self._folders(ids)
        if mode != "fuse":
            return
        state = os.open(self.state, _DIRECTORY)
        try:
            for relative in self._unreadable():
                parent, name = os.path.split(relative)
                folder = _open_path(state, parent, ids.chown)
                if folder is not None:
                    with contextlib.suppress(PermissionError):  # a folder of the agent's other uids: its own
                        _hide(folder, name)
                    os.close(folder)
        finally:
            os.close(state)

    @staticmethod
    def _unreadable() -> list[str]:
        """:func:`_unreadable` of the package manager's folders, looked for again only when they changed.

        The answer is the host's, kept for every sandbox of this user (the walk takes tens of ms)."""
        from git_airlock.engines.bwrap.layout import data_root
        from git_airlock.jsonfile import write_json

        state = " ".join(_changed(f"/{top}") for top in PACKAGE_STATE)
        kept = os.path.join(os.path.dirname(data_root()), "probe", f"unreadable-{os.getuid()}.json")
        with contextlib.suppress(OSError, ValueError), open(kept, encoding="utf-8") as handle:
            answer = json.load(handle)
            if answer["state"] == state:
                return [str(path) for path in answer["paths"]]
        found = _unreadable(PACKAGE_STATE)
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        write_json(kept, {"state": state, "paths": found})
        return found

    # -- mounting it ----------------------------------------------------------------------------------

    def mounts(self, mode: Mode, ids: IdMap) -> dict[str, list[list[str]]]:
        """``enter.py``'s mounts for the layer: id-mapped views and overlays (root), or fuse-overlayfs."""
        hint = (
            f"the layer is {self.root} (the sandbox's own system: what it installed); free space or fix that "
            "folder, or `git airlock rm` the sandbox and start a new one"
        )
        spec: dict[str, list[list[str]]] = {"idmapped": [], "overlays": [], "fuse": []}
        for inside, upper, name in self.layers():
            source = etcview.current() if inside == "/etc" else inside
            lower = os.path.join(self.lower, name) if ids.root else source
            what = f"cannot mount the sandbox's system layer at {upper}"
            options = f"lowerdir={lower},upperdir={upper},workdir={os.path.join(self.work, name)}"
            target = os.path.join(self.mnt, name)
            if mode == "overlay":
                if ids.root:
                    spec["idmapped"].append([source, lower])
                spec["overlays"].append([options + ",userxattr", target, what, hint])
            elif mode == "fuse":
                spec["fuse"].append([options + ",squash_to_root", target, what, hint])
        return spec

    def binds(self) -> list[str]:
        """bwrap's binds of the mounted layers and of its own folders, read-write, in place of the host's."""
        argv: list[str] = []
        for top in OWN:
            argv += ["--bind", os.path.join(self.upper, top), f"/{top}"]
        for inside, _, name in self.layers():
            argv += ["--bind", os.path.join(self.mnt, name), inside]
        return argv

    # -- looking at it --------------------------------------------------------------------------------

    def older_than_host(self) -> bool:
        """Whether the host's packages changed since the layer was made (the host upgraded under it)."""
        try:
            with open(self.made_over, encoding="utf-8") as handle:
                return handle.read() != host_packages()
        except OSError:
            return False

    def holds_packages(self) -> bool:
        """Whether the agent changed the package database (installed or removed packages)."""
        return os.path.lexists(os.path.join(self.state, PACKAGE_DATABASE.lstrip("/")))

    def size(self, limit: int = 200_000) -> int:
        """Bytes the layer takes on disk (its upper and state folders), counted without following a link."""
        return disk_usage(self.upper, limit) + disk_usage(self.state, limit)


def host_packages() -> str:
    """What identifies the host's installed packages: its package database's size and time of change."""
    try:
        info = os.stat(PACKAGE_DATABASE)
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}"


def disk_usage(top: str, limit: int) -> int:
    """Bytes of the blocks under ``top`` (at most ``limit`` entries are looked at: the folder is the agent's)."""
    total, seen, pending = 0, 0, [top]
    while pending and seen < limit:
        folder = pending.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(entry.path)
    return total


def _changed(top: str) -> str:
    """When ``top`` and the folders in it last changed (a lock file made, a package installed)."""
    stamps = []
    with contextlib.suppress(OSError), os.scandir(top) as entries:
        stamps = [str(entry.stat(follow_symlinks=False).st_mtime_ns) for entry in entries if entry.is_dir()]
    with contextlib.suppress(OSError):
        stamps.append(str(os.stat(top).st_mtime_ns))
    return ",".join(stamps)


def _unreadable(tops: tuple[str, ...]) -> list[str]:
    """The entries under the host's ``tops`` this user may not read (nor, for a folder, enter)."""
    found = []
    for top in tops:
        for folder, dirs, files in os.walk(f"/{top}"):
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                wanted = os.R_OK | (os.X_OK if os.path.isdir(path) and not os.path.islink(path) else 0)
                if not os.path.islink(path) and not os.access(path, wanted):
                    found.append(path.lstrip("/"))
            dirs[:] = [name for name in dirs if os.access(os.path.join(folder, name), os.R_OK | os.X_OK)]
    return found


def _hide(folder: int, name: str) -> None:
    """A whiteout for ``name`` where the layer has nothing of that name (overlayfs's mark: a 0/0 device)."""
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=folder)


def _open_path(top: int, relative: str, owner: tuple[int, int] | None) -> int | None:
    """A descriptor of the layer's folder ``relative``, made where missing (owned by ``owner``); None where
    the agent's own entry stands in the way (a file, a link, an opaque folder: nothing of the host's shows)."""
    folder = os.dup(top)
    for part in filter(None, relative.split("/")):
        try:
            made = False
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=folder)
                made = True
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
        except OSError:  # the agent's own entry, or a folder of its other uids
            os.close(folder)
            return None
        os.close(folder)
        folder = inner
        try:
            if made and owner:
                os.fchown(folder, *owner)
            opaque = OPAQUE in os.listxattr(folder)
        except OSError:
            opaque = True
        if opaque:
            os.close(folder)
            return None
    return folder


def _give(ids: IdMap, top: str) -> None:
    from git_airlock.engines.bwrap.userns import give_to

    give_to(ids, top)


def _write_identity(etc: str, ids: IdMap, hostname: str) -> None:
    """The sandbox's own users (root, and the host's system accounts apt and packages expect), its name,
    and git's trust in the host repository it reads (owned by a uid it does not know)."""
    users, groups = _system_accounts("/etc/passwd", 2), _system_accounts("/etc/group", 2)
    passwd = ["root:x:0:0:root:/home/agent:/bin/bash"]
    passwd += [":".join([f[0], "x", *f[2:]]) for f in users if f[0] != "root" and ids.maps(int(f[2]))]
    names = {f[0] for f in users}
    group = ["root:x:0:"]
    for fields in groups:
        if fields[0] != "root" and ids.maps(int(fields[2])):
            members = ",".join(m for m in fields[3].split(",") if m in names) if len(fields) > 3 else ""
            group.append(f"{fields[0]}:x:{fields[2]}:{members}")
    shadow = [f"{line.split(':')[0]}:*:19000:0:99999:7:::" for line in passwd]
    gshadow = [f"{line.split(':')[0]}:*::" for line in group]
    safe = "[safe]\n\tdirectory = *\n"
    files = {
        "passwd": ("\n".join(passwd) + "\n", 0o644),
        "group": ("\n".join(group) + "\n", 0o644),
        "shadow": ("\n".join(shadow) + "\n", 0o640),
        "gshadow": ("\n".join(gshadow) + "\n", 0o640),
        "hostname": (hostname + "\n", 0o644),
        "gitconfig": (safe, 0o644),
    }
    if not ids.maps(42):  # apt drops to _apt for downloads; with root alone mapped, it stays root
        os.makedirs(os.path.join(etc, "apt", "apt.conf.d"), mode=0o755, exist_ok=True)
        files["apt/apt.conf.d/00git-airlock-sandbox"] = ('APT::Sandbox::User "root";\n', 0o644)
    for relative, (text, mode) in files.items():
        path = os.path.join(etc, relative)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, mode)


def _system_accounts(path: str, id_field: int) -> list[list[str]]:
    """The host's system accounts (ids below 1000, and nobody): never a person's."""
    found = []
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.rstrip("\n").split(":")
            if len(fields) > id_field and fields[id_field].isdigit():
                number = int(fields[id_field])
                if number < 1000 or number == 65534:
                    found.append(fields)
    return found
