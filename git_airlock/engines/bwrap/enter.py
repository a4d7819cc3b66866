"""Enter a sandbox's own user namespace, mount its layers, then become COMMAND (bwrap).

``python -I -S enter.py [OPTION...] -- COMMAND...``, the options written by
``engines.bwrap.userns`` (see :data:`OPTIONS`). Standard library only, started
without ``site``, and reading plain arguments rather than JSON (whose import alone
takes longer than the rest), so that it costs about an interpreter's start.

Every uid a sandbox can be maps to an unprivileged host uid: never to host uid 0.
Both ways below end the same: this process is uid 0 of the sandbox's user
namespace (an unprivileged uid on the host), in a private mount namespace that
holds the sandbox's layers, and becomes bwrap, which builds the sandbox there.

- **root** (uid 0 of the initial user namespace) writes the uid and gid maps of a
  new user namespace itself; in a private mount namespace of its own it mounts
  read-only, id-mapped views of the system's directories (root's files there then
  belong to the sandbox's root, so they can be copied up into its layer) and the
  overlays over them; makes every path bwrap will bind reachable for the sandbox's
  root (a folder only root may enter, such as ``/root``, is covered by a small
  in-memory folder that holds just those paths); then joins the new user namespace.
- **anybody else** enters a new user namespace itself, mapped by ``newuidmap`` and
  ``newgidmap`` (the user's own uid and its subordinate range, as rootless podman
  maps them) or, without those, its own uid alone, and mounts the overlays there
  (the system's through ``fuse-overlayfs``: an overlay mounted without privilege
  cannot copy up root's files).

Anything that fails prints an ``error:`` line that names the folder, a ``hint:`` line that
says how to recover, and exits 125 (as ``docker run`` does when the container cannot
start) before COMMAND ever runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import stat
import sys
import time

TYPE_CHECKING = False  # typing itself is not imported: this runs before every sandbox, and costs its start
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_IDMAP = 0x00100000
SYS_OPEN_TREE = 428  # the same numbers on every architecture: new system calls share one table
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
PR_SET_PDEATHSIG = 1
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
CAP_SYS_RESOURCE = 24
SIGTERM = 15
FAILED = 125
"""``engines.base.DID_NOT_START``: the sandbox could not start."""
MOUNT_DEADLINE = 10.0
"""Seconds a FUSE layer may take to appear before the start is given up."""
BIND_OPTIONS = frozenset({"--bind", "--bind-try", "--ro-bind", "--ro-bind-try", "--dev-bind", "--dev-bind-try"})
BWRAP_ARITY = {
    **dict.fromkeys(BIND_OPTIONS, 2),
    **dict.fromkeys(("--setenv", "--symlink", "--file", "--bind-data", "--ro-bind-data", "--chmod"), 2),
    **dict.fromkeys(
        (
            "--chdir", "--size", "--tmpfs", "--proc", "--dev", "--dir", "--hostname", "--uid", "--gid", "--cap-add",
            "--cap-drop", "--seccomp", "--add-seccomp-fd", "--userns", "--userns2", "--pidns", "--perms",
            "--remount-ro", "--unsetenv", "--lock-file", "--sync-fd", "--info-fd", "--json-status-fd", "--block-fd",
            "--userns-block-fd", "--args", "--argv0", "--exec-label", "--file-label", "--mqueue",
        ),
        1,
    ),
}  # fmt: skip
"""How many values each bwrap option takes, to find the bind sources in its command line."""
OPTIONS = {
    "--root": ("root", 0),
    "--uid-map": ("uid_map", 3),
    "--gid-map": ("gid_map", 3),
    "--fd": ("fds", 2),
    "--idmap": ("idmapped", 2),
    "--view": ("views", 2),
    "--overlay": ("overlays", 4),
    "--fuse": ("fuse", 4),
    "--state": ("state", 3),
}
"""This script's options: the spec key each fills and how many values it takes (each may repeat).

``--root``: made by root (see above). ``--uid-map``/``--gid-map INSIDE OUTSIDE COUNT``: the maps.
``--fd N PATH``: PATH opened on descriptor N for COMMAND. ``--idmap SOURCE TARGET``: a read-only,
id-mapped view of SOURCE at TARGET (root); ``--view``: the same, or a plain read-only one where the
file system cannot be id-mapped. ``--overlay OPTIONS TARGET WHAT HINT``: an overlay mount (WHAT and
HINT say what failed and how to recover); ``--fuse``: the same through fuse-overlayfs. ``--state SOURCE
TARGET FIRST``: a writable view of SOURCE at TARGET whose uids FIRST... are shown as the sandbox's own
(root: the agent's state, kept by a block of uids of its own)."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class Failure(Exception):
    """What went wrong, said as the user needs it: the folder, the reason, and how to recover."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str, hint: str = "") -> int:
    if result < 0:
        raise Failure(f"{what}: {os.strerror(ctypes.get_errno())}", hint)
    return result


def _map_lines(entries: list[list[int]]) -> str:
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in entries)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


# -- the user namespace ----------------------------------------------------------------------------


VIEW_IDS = 1000
BLOCK = 65536
"""``userns.BLOCK``: the uids of one of root's sandboxes."""
STATE_HINT = (
    "the file system of git-airlock's data folder cannot show the kept agent state to each sandbox; "
    "`git config --global airlock.keepAgentState false`, or move the data folder (XDG_DATA_HOME) to ext4, xfs or btrfs"
)
"""The ids an id-mapped view maps: the host's system accounts (root, _apt, ...), no person's."""


def made_for_root(uid_map: list[list[int]], gid_map: list[list[int]]) -> int:
    """root: a new user namespace with these maps, held by a descriptor (its first process is gone).

    It is made by a child that first became the sandbox root's host uid: the kernel charges what a user
    namespace's processes hold (inotify instances, processes) to its maker too, so it must not be root."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    child = os.fork()
    if child == 0:  # becomes the sandbox's owner, unshares, says so, and waits until its namespace is held
        os.close(ready_r)
        os.close(hold_w)
        os.setgroups([])
        os.setresgid(gid_map[0][1], gid_map[0][1], gid_map[0][1])
        os.setresuid(uid_map[0][1], uid_map[0][1], uid_map[0][1])
        code = 0 if _libc.unshare(CLONE_NEWUSER) == 0 else 1
        os.write(ready_w, b"x")
        os.read(hold_r, 1)
        os._exit(code)
    os.close(ready_w)
    os.close(hold_r)
    try:
        os.read(ready_r, 1)
        _write(f"/proc/{child}/uid_map", _map_lines(uid_map))
        _write(f"/proc/{child}/gid_map", _map_lines(gid_map))
        return os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise Failure(f"cannot make the sandbox's user namespace: {exc.strerror}") from exc
    finally:
        os.close(hold_w)
        os.close(ready_r)
        os.waitpid(child, 0)


def join(userns: int) -> None:
    """root: become uid 0 of the sandbox's user namespace, with its capabilities there and none on the host."""
    _check(_libc.setns(userns, CLONE_NEWUSER), "cannot enter the sandbox's user namespace")
    os.close(userns)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def enter_own(spec: Spec) -> None:
    """Anybody but root: this process enters a new user namespace (and a mount namespace of it)."""
    uid_map, gid_map = spec["uid_map"], spec["gid_map"]
    if len(uid_map) == 1 and uid_map[0][1:] == [os.getuid(), 1]:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "cannot make the sandbox's user namespace")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", _map_lines(uid_map))
        _write("/proc/self/gid_map", _map_lines(gid_map))
        return
    go_r, go_w = os.pipe()
    parent = os.getpid()
    helper = os.fork()
    if helper == 0:  # maps its parent's new namespace from outside it, with the setuid helpers
        os.close(go_w)
        os.read(go_r, 1)
        for tool, entries in (("newuidmap", uid_map), ("newgidmap", gid_map)):
            pid = os.fork()
            if pid == 0:
                try:
                    os.execvp(tool, [tool, str(parent), *(str(n) for entry in entries for n in entry)])
                except OSError:
                    os._exit(127)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
                os._exit(1)
        os._exit(0)
    os.close(go_r)
    try:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "cannot make the sandbox's user namespace")
    finally:
        os.write(go_w, b"x")
        os.close(go_w)
        mapped = os.waitstatus_to_exitcode(os.waitpid(helper, 0)[1]) == 0
    if not mapped:
        raise Failure(
            "newuidmap/newgidmap refused the sandbox's uid map (see above); "
            "`git airlock doctor` checks /etc/subuid, /etc/subgid and the uidmap package"
        )
    os.setgroups([])


# -- mounts ------------------------------------------------------------------------------------------


def private() -> None:
    """Mounts made from here on stay in this mount namespace: none reaches the host's."""
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "cannot make the sandbox's mounts private")


def idmapped_view(
    source: str, target: str, userns: int, or_plain: bool = False, writable: bool = False, hint: str = ""
) -> None:
    """A view of ``source`` at ``target`` (read-only unless ``writable``) whose owners are as ``userns`` maps them.

    ``or_plain``: where the file system cannot be id-mapped, a plain read-only view will do."""
    what = f"cannot map {source} into the sandbox's uids (at {target})"
    tree = _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(source), OPEN_TREE_CLONE | os.O_CLOEXEC), what)
    try:
        flags = (0 if writable else MOUNT_ATTR_RDONLY) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        attr = MountAttr(flags | MOUNT_ATTR_IDMAP, 0, 0, userns)
        size = ctypes.sizeof(attr)
        if _libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, ctypes.byref(attr), size) < 0:
            if not or_plain:
                _check(-1, what, hint)
            attr = MountAttr(flags, 0, 0, 0)
            _check(_libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, ctypes.byref(attr), size), what)
        _check(_libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH), what)
    finally:
        os.close(tree)


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def without_reserve() -> None:
    """Drop CAP_SYS_RESOURCE, and take up again the capabilities a change of the file system uid drops
    (CAP_DAC_OVERRIDE and the like): see :func:`overlays_as`."""
    header = CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "cannot read this process's capabilities")
    word, bit = divmod(CAP_SYS_RESOURCE, 32)
    data[word].permitted &= ~(1 << bit)
    for part in data:
        part.effective = part.permitted
    _check(_libc.capset(ctypes.byref(header), data), "cannot drop CAP_SYS_RESOURCE")


def overlay(options: str, target: str, what: str, hint: str) -> None:
    _check(_libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, os.fsencode(options)), what, hint)


def overlays_as(owner: tuple[int, int], mounts: list[list[str]]) -> None:
    """root: the overlays mounted with the sandbox root's file system uid and gid, and without
    CAP_SYS_RESOURCE. overlayfs writes into the layer with its mounter's credentials; as root's, the
    agent's writes could take the blocks a file system keeps for root (for its uid, or its capability).

    As that uid, the folders only root may enter above the layers are out of reach: every path of the
    mount is given as a descriptor opened before (``/proc/self/fd/N``), which leads past them."""
    opened: list[int] = []

    def held(path: str) -> str:
        opened.append(os.open(path, os.O_PATH | os.O_CLOEXEC))
        return f"/proc/self/fd/{opened[-1]}"

    try:
        prepared = []
        for options, target, what, hint in mounts:
            parts = []
            for part in options.split(","):
                key, equals, value = part.partition("=")
                if key in ("lowerdir", "upperdir", "workdir"):
                    value = ":".join(held(path) for path in value.split(":"))
                parts.append(key + equals + value)
            prepared.append([",".join(parts), held(target), what, hint])
        _libc.setfsgid(owner[1])
        _libc.setfsuid(owner[0])
        without_reserve()
        try:
            for options, target, what, hint in prepared:
                overlay(options, target, what, hint)
        finally:
            _libc.setfsuid(0)
            _libc.setfsgid(0)
    finally:
        for fd in opened:
            os.close(fd)


def fuse_overlays(mounts: list[list[str]]) -> None:
    """``fuse-overlayfs`` in the foreground for each mount, all started at once, each ended by the kernel once
    the process that becomes bwrap exits (its parent-death signal). What they say goes to a log beside
    each mount point (``<target>.log``), shown when a mount fails: the sandbox's terminal is not theirs."""
    started = []
    for options, target, what, hint in mounts:
        before = os.stat(target).st_dev
        log = os.open(target + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        pid = os.fork()
        if pid == 0:
            _libc.prctl(PR_SET_PDEATHSIG, SIGTERM)
            os.dup2(log, 2)
            try:
                os.execvp("fuse-overlayfs", ["fuse-overlayfs", "-f", "-o", options, target])
            except OSError:
                os._exit(127)
        os.close(log)
        started.append((pid, target, before, what, hint))
    deadline = time.monotonic() + MOUNT_DEADLINE
    for pid, target, before, what, hint in started:
        while os.stat(target).st_dev == before:
            if os.waitpid(pid, os.WNOHANG)[0] or time.monotonic() > deadline:
                raise Failure(f"{what}: fuse-overlayfs did not mount it ({_last_words(target + '.log')})", hint)
            time.sleep(0.001)


def _last_words(log: str) -> str:
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip() and "lazytime" not in line]
    except OSError:
        return "it said nothing"
    return lines[-1] if lines else "it said nothing"


# -- what bwrap must reach ---------------------------------------------------------------------------


def bind_sources(command: list[str]) -> list[str]:
    """The host paths bwrap's command line binds into the sandbox."""
    sources, i = [], 1
    while i < len(command) and command[i] != "--" and command[i].startswith("--"):
        if command[i] in BIND_OPTIONS:
            sources.append(command[i + 1])
        i += 1 + BWRAP_ARITY.get(command[i], 0)
    return sources


def _searchable(info: os.stat_result, uid: int, gid: int) -> bool:
    bit = 0o100 if info.st_uid == uid else 0o010 if info.st_gid == gid else 0o001
    return bool(info.st_mode & bit)


def blocking_folder(path: str, uid: int, gid: int) -> str | None:
    """The topmost folder above ``path`` that host ``uid`` may not enter (``/root``, a 0700 temporary folder)."""
    folder = "/"
    for part in path.strip("/").split("/")[:-1]:
        folder = os.path.join(folder, part)
        if not _searchable(os.stat(folder), uid, gid):
            return folder
    return None


def make_reachable(sources: list[str], uid: int, gid: int) -> None:
    """Cover each blocking folder with an in-memory one holding only the paths bwrap binds from it.

    Each path is opened before its folder is covered and bound back from that descriptor, so the
    same path strings lead to the same files; nothing else of the covered folder stays in reach.
    """
    wanted: dict[str, list[tuple[str, int]]] = {}
    for source in sources:
        try:
            real = os.path.realpath(source)
            blocked = blocking_folder(real, uid, gid)
            if blocked:
                wanted.setdefault(blocked, []).append((real, os.open(real, os.O_PATH | os.O_CLOEXEC)))
        except OSError:
            continue  # bwrap says what is missing, as it would have
    for folder, entries in wanted.items():
        label = f"cannot make {folder} reachable for the sandbox"
        _check(_libc.mount(b"tmpfs", os.fsencode(folder), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=1m"), label)
        bound: list[str] = []
        for real, fd in sorted(entries):
            if any(real == done or real.startswith(done + "/") for done in bound):
                os.close(fd)
                continue
            _place(folder, real, stat.S_ISDIR(os.fstat(fd).st_mode))
            origin = os.fsencode(f"/proc/self/fd/{fd}")
            _check(_libc.mount(origin, os.fsencode(real), None, MS_BIND | MS_REC, None), label)
            os.close(fd)
            bound.append(real)


def _place(folder: str, path: str, directory: bool) -> None:
    """An empty folder (or file) at ``path`` inside the in-memory ``folder``, with the folders above it."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if directory:
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


# -- the whole start ---------------------------------------------------------------------------------


def open_files(spec: Spec) -> None:
    """Files COMMAND reads from a descriptor (bwrap's seccomp program), opened while they are in reach."""
    for descriptor, path in spec.get("fds", []):
        number = int(descriptor)
        fd = os.open(path, os.O_RDONLY)
        if fd != number:
            os.dup2(fd, number)
            os.close(fd)
        os.set_inheritable(number, True)


def enter(spec: Spec, command: list[str]) -> None:
    open_files(spec)
    if spec.get("root"):
        userns = made_for_root(spec["uid_map"], spec["gid_map"])
        # the views map only the host's system accounts: a person's files there stay that person's
        base, gbase = spec["uid_map"][0][1], spec["gid_map"][0][1]
        views = made_for_root([[0, base, VIEW_IDS]], [[0, gbase, VIEW_IDS]])
        _check(_libc.unshare(CLONE_NEWNS), "cannot make the sandbox's mount namespace")
        private()
        for source, target in spec.get("idmapped", []):
            idmapped_view(source, target, views)
        for source, target in spec.get("views", []):
            idmapped_view(source, target, views, or_plain=True)
        os.close(views)
        for source, target, first in spec.get("state", []):  # the store's block of uids as this sandbox's
            kept = made_for_root([[int(first), base, BLOCK]], [[int(first), gbase, BLOCK]])
            idmapped_view(source, target, kept, writable=True, hint=STATE_HINT)
            os.close(kept)
        owner = spec["uid_map"][0][1], spec["gid_map"][0][1]
        overlays_as(owner, spec.get("overlays", []))
        make_reachable(bind_sources(command) if os.path.basename(command[0]) == "bwrap" else [], *owner)
        join(userns)
        return
    enter_own(spec)
    private()
    for options, target, what, hint in spec.get("overlays", []):
        overlay(options, target, what, hint)
    fuse_overlays(spec.get("fuse", []))


def parse(argv: list[str]) -> tuple[Spec, list[str]]:
    """The spec the options describe, and COMMAND (what follows ``--``)."""
    spec: Spec = {}
    i = 0
    while i < len(argv) and argv[i] != "--":
        key, count = OPTIONS[argv[i]]
        values = argv[i + 1 : i + 1 + count]
        if len(values) != count:
            raise KeyError(argv[i])
        if count == 0:
            spec[key] = True
        else:
            numeric = key in ("uid_map", "gid_map")
            spec.setdefault(key, []).append([int(v) for v in values] if numeric else values)
        i += 1 + count
    return spec, argv[i + 1 :]


def main(argv: list[str]) -> int:
    try:
        spec, command = parse(argv)
    except (KeyError, ValueError):
        command = []
    if not command:
        print("usage: enter.py [OPTION...] -- COMMAND...", file=sys.stderr)
        return 2
    program = _which(command[0])  # now: the covering folders may hide where it lies, and what finds it
    try:
        enter(spec, command)
    except Failure as exc:
        print(f"error: {exc}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return FAILED
    except OSError as exc:
        print(f"error: cannot start the sandbox: {exc}", file=sys.stderr)
        return FAILED
    for number in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by this interpreter; an ignored signal outlives exec
        signal.signal(number, signal.SIG_DFL)
    try:
        # nothing of the user's environment goes on: bwrap's own process inside (the sandbox's PID 1) keeps
        # what bwrap was started with, readable there; the sandbox's variables come from bwrap's --setenv
        os.execve(program, command, {"PATH": CLEAN_PATH})
    except OSError as exc:
        print(f"error: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
    return FAILED


def _which(name: str) -> str:
    if "/" in name:
        return name
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
