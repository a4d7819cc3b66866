"""Who a sandbox's users are on the host: its uid and gid maps, and the start (``enter.py``) that applies them.

Inside, the agent is root of its own system; on the host, every uid it can be is
unprivileged (the rootless-container model):

- for an ordinary user, uid 0 inside is the user's own uid and uids 1-65535 inside
  are its subordinate range (``/etc/subuid``, ``/etc/subgid``), mapped by ``newuidmap``
  and ``newgidmap`` as rootless podman maps them; without those, uid 0 alone, as the
  user's own uid (tools that change user, such as apt's ``_apt``, then stay root);
- for root, a block of 65,536 uids of its own per sandbox, picked where no user,
  group or subordinate range of the host lives (as ``systemd-nspawn --private-users=pick``
  does) and recorded with the sandbox: what the agent writes is owned by those uids,
  never by root, and it shares no per-user kernel limit (inotify, processes) with root.

The map is chosen when a sandbox is made and kept in its ``meta.json``; every later
start, and every host-side sandbox over its files, uses the same one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_airlock.engines.bwrap.layout import SandboxMeta

BLOCK = 65536
FIRST_BLOCK = 0x70000000
"""Root's sandboxes take uids from here up: above systemd's container ranges, below 2^31."""
LAST_BLOCK = 0x7FFF0000
STALE_RESERVATION = 600.0
"""Seconds after which a block reserved for a sandbox that was never made is free again."""
ENTER_FD_FILTER = 3
Range = tuple[int, int, int]
"""(first id inside, first id on the host, count), as in ``/proc/PID/uid_map``."""


def initial_root() -> bool:
    """uid 0 of the machine itself (not of a container's user namespace): it maps ids freely."""
    if os.getuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map", encoding="ascii") as handle:
            return handle.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


@dataclass(frozen=True)
class IdMap:
    """A sandbox's uid and gid maps."""

    uid: tuple[Range, ...]
    gid: tuple[Range, ...]
    root: bool
    """Made by root for root: ``enter.py`` writes the maps itself and id-maps the system."""

    @property
    def owner(self) -> tuple[int, int]:
        """The host uid and gid of the sandbox's root: the owner of its clone, HOME and layer."""
        return self.uid[0][1], self.gid[0][1]

    @property
    def chown(self) -> tuple[int, int] | None:
        """What the host must chown files it makes for the sandbox to; None when they are the user's already."""
        return self.owner if self.owner != (os.getuid(), os.getgid()) else None

    def maps(self, inside: int) -> bool:
        """Whether uid ``inside`` exists in the sandbox (``_apt`` is 42, ``nobody`` 65534)."""
        return any(first <= inside < first + count for first, _, count in self.uid)

    def to_meta(self) -> dict[str, list[list[int]]]:
        return {"uid": [list(r) for r in self.uid], "gid": [list(r) for r in self.gid]}

    def describe(self) -> str:
        first, host, count = self.uid[-1]
        if len(self.uid) == 1 and count == 1:
            return f"root inside is uid {host} on the host (no other uid)"
        if len(self.uid) == 1:
            return f"uids 0-{count - 1} inside are {host}-{host + count - 1} on the host"
        return f"root inside is uid {self.uid[0][1]}, uids {first}-{first + count - 1} are {host}-{host + count - 1}"


def from_meta(meta: SandboxMeta) -> IdMap | None:
    recorded = meta.get("ids")
    if not recorded:
        return None
    uid = tuple((int(a), int(b), int(c)) for a, b, c in recorded["uid"])
    gid = tuple((int(a), int(b), int(c)) for a, b, c in recorded["gid"])
    return IdMap(uid, gid, root=initial_root() and uid[0][1] != 0)


def of_sandbox(meta: SandboxMeta) -> IdMap:
    """The sandbox's uid map, as recorded; for a sandbox that has none (one a dry run only shows, or one
    made before maps existed, until its next ``up`` records one), the map a new sandbox would get."""
    return from_meta(meta) or scratch_map()


def for_user() -> IdMap:
    """An ordinary user's map: its own uid as root, its subordinate range above, where it has one."""
    uid, gid = os.getuid(), os.getgid()
    sub_uid, sub_gid = _subordinate("/etc/subuid", uid), _subordinate("/etc/subgid", uid)
    if sub_uid and sub_gid and shutil.which("newuidmap") and shutil.which("newgidmap"):
        count = min(sub_uid[1], sub_gid[1], BLOCK - 1)
        return IdMap(((0, uid, 1), (1, sub_uid[0], count)), ((0, gid, 1), (1, sub_gid[0], count)), root=False)
    return IdMap(((0, uid, 1),), ((0, gid, 1),), root=False)


def _subordinate(path: str, uid: int) -> tuple[int, int] | None:
    """The user's first subordinate range in ``/etc/subuid`` (or ``subgid``): (start, count)."""
    import pwd

    names = {str(uid)}
    with contextlib.suppress(KeyError):
        names.add(pwd.getpwuid(uid).pw_name)
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in names and fields[1].isdigit() and fields[2].isdigit():
                    return int(fields[1]), int(fields[2])
    except OSError:
        return None
    return None


def for_new_sandbox(holder: str, dry_run: bool) -> IdMap:
    """The map a new sandbox gets: root's is a free block, reserved at once (unless this is a dry run) for
    ``holder``, the folder of what holds it (the sandbox's data folder)."""
    if not initial_root():
        return for_user()
    base = reserve_block(holder, dry_run)
    return IdMap(((0, base, BLOCK),), ((0, base, BLOCK),), root=True)


def scratch_map() -> IdMap:
    """A map for trying what the machine can mount: root's first block (nothing is made as it), or the user's."""
    if not initial_root():
        return for_user()
    return IdMap(((0, FIRST_BLOCK, BLOCK),), ((0, FIRST_BLOCK, BLOCK),), root=True)


RESERVATIONS = "/var/lib/git-airlock/uids"
"""Root's blocks of uids, one file each: one place for the whole machine, whatever HOME root runs with."""


def reserve_block(holder: str, dry_run: bool) -> int:
    """The lowest block of uids nobody uses: no user or group of the host, no subordinate range, no
    process running as one of them, no other sandbox's.

    A block is taken by creating its reservation file exclusively (naming its holder and the process that
    took it), so two ``up`` runs at once never get the same one; ``rm`` gives it back."""
    from git_airlock.errors import AirlockError

    if not dry_run:
        os.makedirs(RESERVATIONS, mode=0o700, exist_ok=True)
    taken = _host_ids() + [(uid, uid + 1) for uid in _running_uids()]
    for base in range(FIRST_BLOCK, LAST_BLOCK, BLOCK):
        if any(start < base + BLOCK and base < end for start, end in taken):
            continue
        path = os.path.join(RESERVATIONS, str(base))
        if os.path.exists(path) and not _stale(path):
            continue
        if dry_run:
            return base
        with contextlib.suppress(FileNotFoundError):
            if _stale(path):
                os.unlink(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{holder}\n{os.getpid()}\n")
        return base
    raise AirlockError(
        "no free block of uids is left for a new sandbox", hint="remove sandboxes you no longer need (`git airlock rm`)"
    )


def _stale(path: str) -> bool:
    """A reservation whose holder is gone (an ``up`` that failed early, a folder removed by hand), after a
    while: its folder does not exist and the process that took it has ended."""
    try:
        with open(path, encoding="utf-8") as handle:
            holder, pid = [*handle.read().splitlines(), "", ""][:2]
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return True
    alive = pid.isdigit() and os.path.exists(f"/proc/{pid}")
    return age > STALE_RESERVATION and not alive and not os.path.isdir(holder)


def _running_uids() -> set[int]:
    """The uids processes of this machine run as (a block some other program uses is not free)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found.add(os.stat(f"/proc/{entry}").st_uid)
    return found


def release(meta: SandboxMeta) -> None:
    """Give a removed sandbox's block of uids back."""
    ids = from_meta(meta)
    if ids is not None:
        give_back(ids)


def give_back(ids: IdMap) -> None:
    """Give a block of root's uids back (nothing to do for an ordinary user's own range)."""
    if ids.root:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(RESERVATIONS, str(ids.uid[0][1])))


def _host_ids() -> list[tuple[int, int]]:
    """Id ranges of the host's own: users, groups and subordinate ranges (start, end)."""
    taken: list[tuple[int, int]] = []
    for path in ("/etc/passwd", "/etc/group"):
        with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    taken.append((int(fields[2]), int(fields[2]) + 1))
    for path in ("/etc/subuid", "/etc/subgid"):
        with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                    taken.append((int(fields[1]), int(fields[1]) + int(fields[2])))
    return taken


def give_to(ids: IdMap, *paths: str) -> None:
    """Make ``paths`` (and everything under them) the sandbox root's, never following a link.

    Only for what the host made for the sandbox before its agent ran (or, for a sandbox made
    before maps existed, what belonged to the host user's uid anyway)."""
    owner = ids.chown
    if owner is None:
        return
    for top in paths:
        if not os.path.lexists(top):
            continue
        os.lchown(top, *owner)
        for folder, dirs, files in os.walk(top):
            for entry in [*dirs, *files]:
                os.lchown(os.path.join(folder, entry), *owner)


def remove(path: str, ids: IdMap | None) -> None:
    """Remove a sandbox's folder, whoever of its uids owns what is in it.

    An ordinary user cannot remove what the sandbox's other uids made (apt's ``_apt``, say): that is
    removed from inside the sandbox's user namespace, as its root (``rm`` never follows a link)."""
    from git_airlock import process
    from git_airlock.engines.bwrap.layout import remove_tree

    if ids is not None and ids.chown is None and len(ids.uid) > 1 and os.path.isdir(path):
        process.run([*prefix(ids, {}, None), "rm", "-rf", "--one-file-system", "--", path], check=False)
    remove_tree(path)


def enter_script() -> str:
    from git_airlock.engines.bwrap import enter

    return enter.__file__


def prefix(ids: IdMap, spec: Mapping[str, list[list[str]]], filter_path: str | None) -> list[str]:
    """``python -I -S enter.py OPTION... --``: what goes before bwrap's command line.

    ``spec`` adds the mounts (``overlays``: [options, target, what failed, hint]; ``idmapped`` and
    ``views``: [source, target], for root; ``fuse``: like ``overlays``, through fuse-overlayfs). The
    seccomp program is opened on descriptor 3 before anything is entered, where bwrap reads it."""
    argv = [sys.executable, "-I", "-S", enter_script()]
    if ids.root:
        argv.append("--root")
    for option, ranges in (("--uid-map", ids.uid), ("--gid-map", ids.gid)):
        for entry in ranges:
            argv += [option, *(str(number) for number in entry)]
    if filter_path:
        argv += ["--fd", str(ENTER_FD_FILTER), filter_path]
    kinds = (("idmapped", "--idmap"), ("views", "--view"), ("state", "--state"), ("overlays", "--overlay"))
    for key, option in (*kinds, ("fuse", "--fuse")):
        for mount in spec.get(key, []):
            argv += [option, *mount]
    return [*argv, "--"]
