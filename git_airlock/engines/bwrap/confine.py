"""What every bwrap sandbox of git-airlock shares, the agent's and the host's own.

The host runs git over the agent's clone (to fetch, commit, look at uncommitted
work) only inside a sandbox built from the same pieces as the agent's, so that
whatever the agent planted in its clone meets the same walls:

- the sandbox's own user namespace (``userns``: every uid in it is an unprivileged
  uid on the host, never root), entered by ``enter.py`` before bwrap starts; in it
  the agent is root with the capabilities a rootless container's root has, and the
  host's own work runs as that root with none;
- new PID, IPC, UTS and cgroup namespaces, and no network unless asked;
- the seccomp filter of ``seccomp.py`` (no TIOCSTI/TIOCLINUX, no nested user
  namespace), read by bwrap from descriptor 3;
- the system read-only (or, for the agent, its own layer over it: ``system``),
  and a few harmless ``/etc`` files.

The host's own sandboxes that run no agent file (rebuilding an agent's package,
a merge's checks) are made by bwrap alone (``offline``): uid 1000 in a user namespace
of bwrap's, with device nodes of their own when that uid is root on the host.
"""

from __future__ import annotations

import hashlib
import os
import platform

from git_airlock.engines.bwrap import seccomp, userns
from git_airlock.engines.bwrap.layout import Place

BWRAP = "bwrap"
FILTER_FD = str(userns.ENTER_FD_FILTER)
OFFLINE_UID = "1000"
AGENT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)
"""What root of a rootless podman container holds (its default list): enough for apt, dpkg and services,
over the sandbox's own uids only. No CAP_SYS_ADMIN (no mount, umount or remount), no CAP_NET_RAW or
CAP_NET_ADMIN (no raw socket, no route past the gate), no CAP_SYS_MODULE, CAP_SYS_PTRACE or CAP_MKNOD."""
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "bash.bashrc",
    "profile",
    "profile.d",
    "inputrc",
    "terminfo",
    "mime.types",
    "protocols",
    "services",
)
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
"""The nodes bwrap's ``--dev`` binds from the host, by (major, minor)."""
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "driver", "tty")
"""Parts of /proc that are the whole machine's, not the sandbox's: read-only inside (Docker's list, and a
few more). Their write permission is checked against the file's owner, root: when git-airlock runs as
root, the sandbox user is root on the host side of the uid mapping, and without this could set any
sysctl (``kernel.core_pattern`` runs a program as root on the host). bwrap covers some of them itself,
but only where its own access check passes, which it does not for root's read-only directories."""
PROC_HIDDEN = (
    "keys",
    "key-users",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "slabinfo",
    "vmallocinfo",
    "pagetypeinfo",
    "kcore",
    "kpageflags",
    "kpagecount",
    "kpagecgroup",
)
"""Files of /proc that tell about the whole machine (root's keys, kernel memory layout) and are
readable by root alone, hence by the sandbox user when git-airlock runs as root: hidden behind an
unreadable node (Docker masks the same kind)."""
RUN_SIZE = 16 * 1024 * 1024


def filter_path() -> str:
    """Where the seccomp program is kept: the user's cache, named by its content (never agent-visible)."""
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(seccomp.program()).hexdigest()[:16]
    return os.path.join(user_cache_dir("git-airlock"), "seccomp", f"{platform.machine()}-{digest}.bpf")


def write_filter() -> str:
    """Write the seccomp program once (atomically: bwrap never reads half of it); return its path."""
    import tempfile

    path = filter_path()
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".filter-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(seccomp.program())
    os.replace(tmp, path)
    return path


def with_filter(bwrap_argv: list[str]) -> list[str]:
    """Prefix that opens the filter on descriptor 3 and execs bwrap, which reads it (``--seccomp 3``), with
    nothing of the user's environment: bwrap's own process inside (the sandbox's PID 1) keeps what bwrap
    was given, and every process of the sandbox can read it there."""
    clean = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin"]
    if not seccomp.supported():
        return [*clean, *bwrap_argv]
    return ["sh", "-c", f'exec "$@" {FILTER_FD}<"$0"', filter_path(), *clean, *bwrap_argv]


def namespaces(
    *, network: bool, terminal: bool, hostname: str | None = None, capabilities: tuple[str, ...] = ()
) -> list[str]:
    """bwrap and its options for the namespaces, the capabilities and the filter, in a sandbox ``enter.py``
    started (already in its own user namespace, as its root).

    ``terminal``: the sandbox runs in the foreground (an agent or a shell), on the pseudo-terminal
    ``ptyrelay`` gave it, which it keeps as its controlling terminal for job control. Other sandboxes
    start a new session and have no controlling terminal at all. Where no filter can be built (an
    architecture ``seccomp`` does not know), every sandbox starts a new session: TIOCSTI needs a
    controlling terminal.
    """
    argv = [
        BWRAP,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
    ]
    for capability in capabilities:
        argv += ["--cap-add", capability]
    if hostname:
        argv += ["--hostname", hostname]
    if not network:
        argv.append("--unshare-net")
    if seccomp.supported():
        argv += ["--seccomp", FILTER_FD]
    if not terminal or not seccomp.supported():
        argv.append("--new-session")
    return argv


def entered(ids: userns.IdMap, mounts: dict[str, list[list[str]]], bwrap_argv: list[str]) -> list[str]:
    """The whole start of a sandbox over a sandbox's files: ``enter.py`` with its maps and mounts, then bwrap."""
    spec = {key: value for key, value in mounts.items() if value}
    return [*userns.prefix(ids, spec, filter_path() if seccomp.supported() else None), *bwrap_argv]


def links() -> list[str]:
    """The system's top folders that are links (a merged ``/usr``: ``/bin -> usr/bin``), as links."""
    argv: list[str] = []
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
    return argv


def system(paths: Place) -> list[str]:
    """Read-only system directories, harmless ``/etc`` files and the sandbox's own passwd, group and git config."""
    argv = links()
    for top in SYSTEM_DIRS:
        if os.path.isdir(top) and not os.path.islink(top):
            argv += ["--ro-bind", top, top]
    for entry in ETC_ENTRIES:
        if os.path.lexists(f"/etc/{entry}"):
            argv += ["--ro-bind", f"/etc/{entry}", f"/etc/{entry}"]
    for file in ("passwd", "group", "gitconfig"):
        argv += ["--ro-bind", os.path.join(paths.etc, file), f"/etc/{file}"]
    return argv


def scratch(tmp_size: int, devices: str | None) -> list[str]:
    """``/proc``, ``/dev`` and size-limited in-memory ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run``.

    ``devices``: a folder of the sandbox's own device nodes to use instead of the host's.
    """
    argv = ["--proc", "/proc"]
    for entry in PROC_READ_ONLY:
        argv += ["--ro-bind-try", f"/proc/{entry}", f"/proc/{entry}"]
    for entry in PROC_HIDDEN:
        if os.path.exists(f"/proc/{entry}"):
            argv += ["--ro-bind", "/dev/null", f"/proc/{entry}"]
    argv += ["--dev", "/dev"]
    if devices:
        for node in DEVICES:
            argv += ["--dev-bind", os.path.join(devices, node), f"/dev/{node}"]
        argv += ["--dev-bind", os.path.join(devices, "tty"), "/dev/console"]
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        argv += ["--size", str(tmp_size), "--tmpfs", folder]
    return [*argv, "--size", str(RUN_SIZE), "--tmpfs", "/run"]


def own_devices(paths: Place) -> str | None:
    """The folder of an offline sandbox's own device nodes, or None where the host's are safe to share.

    The host's nodes are root's; only when git-airlock runs as the real root (uid 0 in the
    initial user namespace, which also holds CAP_MKNOD) would bwrap's uid 1000 map onto their
    owner. In a rootless container, "root" is someone else on the host and cannot make nodes.
    (A sandbox ``enter.py`` started maps no uid to root, so the host's nodes are out of its reach.)
    """
    return paths.dev if userns.initial_root() else None


def make_devices(paths: Place) -> None:
    """Make (or put right) the sandbox's own device nodes, before every start.

    Whatever the agent did to them (its mode, say) lasts no longer than the run that did it.
    """
    import stat

    from git_airlock.errors import AirlockError

    os.makedirs(paths.dev, mode=0o700, exist_ok=True)
    try:
        for node, (major, minor) in DEVICES.items():
            path = os.path.join(paths.dev, node)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                info = None
            wanted = os.makedev(major, minor)
            if info and stat.S_ISCHR(info.st_mode) and info.st_rdev == wanted and stat.S_IMODE(info.st_mode) == 0o666:
                continue
            if info:
                os.unlink(path)
            os.mknod(path, 0o666 | stat.S_IFCHR, wanted)
            os.chmod(path, 0o666)  # mknod applies the umask
        os.close(os.open(os.path.join(paths.dev, "null"), os.O_WRONLY))
    except OSError as exc:
        raise AirlockError(
            f"cannot make the sandbox's device nodes in {paths.dev}: {exc.strerror}",
            hint="the user data directory must be on a file system that allows device files (not mounted nodev)",
        ) from exc


def offline(place: Place, tmp_size: int, mounts: list[str], own_user: bool = True) -> list[str]:
    """bwrap up to its ``--`` for the host's own work in a sandbox (rebuilding an agent's package, a
    merge's checks): no network, no terminal, the system, in-memory scratch, ``mounts``, started in
    ``/tmp`` with nothing of the user's environment.

    ``own_user``: uid 1000 in a user namespace of bwrap's own, which is the user's uid outside (what
    must write the user's own files: the agents' folder); else bwrap runs as ``entered`` starts it,
    in a sandbox's user namespace, as its root (what runs code of the agent's: a merge's checks)."""
    argv = namespaces(network=False, terminal=False)
    if own_user:
        argv += ["--unshare-user", "--uid", OFFLINE_UID, "--gid", OFFLINE_UID]
    return [
        *argv,
        *system(place),
        *scratch(tmp_size, own_devices(place) if own_user else None),
        *mounts,
        "--chdir",
        "/tmp",
        "--clearenv",
        *("--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"),
        *("--setenv", "HOME", "/tmp"),
        *("--setenv", "LANG", "C.UTF-8"),
        "--",
    ]


def prepare(paths: Place) -> None:
    """What every sandbox of ``paths`` needs on the host before bwrap starts: filter and identity."""
    from git_airlock.engines.bwrap.layout import write_identity

    write_filter()
    write_identity(paths)


def prepare_offline(place: Place) -> None:
    """:func:`prepare`, and the device nodes of an :func:`offline` sandbox where it needs its own."""
    prepare(place)
    if own_devices(place):
        make_devices(place)
