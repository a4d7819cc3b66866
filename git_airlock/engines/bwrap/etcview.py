"""What a sandbox sees of the host's ``/etc``: a copy of the entries it may see, made once per state of them.

The sandbox's ``/etc`` is a layer of its own over this copy, never over the host's ``/etc``
itself: a layer over the live folder would show whatever the host adds to it while a sandbox
runs (a new ``/etc/shadow`` is written as ``/etc/nshadow`` first), and through the id-mapped
view root's own files there would be the sandbox root's to read. The copy holds only the shown
entries (:data:`SHOWN`), and of those only what anybody may read: a file of mode 0600 (apt's
proxy credentials, a private key) is left out, as are :data:`HIDDEN`.

Copies live under the user data directory (``etc/<state>/etc``), shared by every sandbox
made while ``/etc`` looked the same; a start after the host changed it (a file added,
removed or replaced in a shown folder, a shown file changed) makes a new one. Links stay
links (``/etc/alternatives`` point into ``/usr``, which the sandbox has), except those into
``/run``, which the sandbox does not share (a ``resolv.conf`` of systemd-resolved): their
content is copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile

SHOWN = (
    "alternatives", "ssl", "ca-certificates", "ca-certificates.conf", "resolv.conf", "hosts", "nsswitch.conf",
    "localtime", "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "bash.bashrc", "profile", "profile.d",
    "inputrc", "terminfo", "mime.types", "protocols", "services", "apt", "dpkg", "debconf.conf", "debian_version",
    "os-release", "lsb-release", "issue", "issue.net", "shells", "login.defs", "adduser.conf", "deluser.conf",
    "python3", "perl", "gai.conf", "host.conf", "ethertypes", "networks", "rpc", "mailcap", "magic", "magic.mime",
    "skel", "xattr.conf", "ucf.conf", "logrotate.d", "cron.daily", "init.d",
)  # fmt: skip
"""What the sandbox sees of the host's /etc (the rest, its users, keys and configuration, stays out)."""
HIDDEN = ("ssl/private", "apt/auth.conf", "apt/auth.conf.d")
"""Left out of shown folders whatever their mode: private keys, and the credentials of package sources."""
KEEP = 4
"""Copies kept: older ones may still be under a running sandbox."""


def root() -> str:
    from git_airlock.engines.bwrap.layout import data_root

    return os.path.join(os.path.dirname(data_root()), "etc")


def current() -> str:
    """Where the copy of /etc as it is now lives (made by :func:`ensure`)."""
    return os.path.join(root(), state(), "etc")


def state() -> str:
    """What names the current state of the shown entries: the times their folders and files last changed."""
    seen = []
    for name in SHOWN:
        path = f"/etc/{name}"
        try:
            info = os.lstat(path)
        except OSError:
            continue
        seen.append(f"{name}:{info.st_mode}:{info.st_size}:{info.st_mtime_ns}")
        if stat.S_ISLNK(info.st_mode) and _into_run(path):
            with contextlib.suppress(OSError):
                seen.append(f"{name}->{os.stat(path).st_mtime_ns}")
        elif stat.S_ISDIR(info.st_mode):
            for folder, dirs, _ in os.walk(path):
                for inner in dirs:
                    with contextlib.suppress(OSError):
                        seen.append(f"{folder}/{inner}:{os.lstat(os.path.join(folder, inner)).st_mtime_ns}")
    return hashlib.sha256("\n".join(seen).encode()).hexdigest()[:16]


def ensure(target: str) -> None:
    """Make the copy at ``target`` (a path :func:`current` gave) unless it exists; keep the newest few."""
    if os.path.isdir(target):
        return
    folder = os.path.dirname(target)
    os.makedirs(os.path.dirname(folder), mode=0o755, exist_ok=True)
    building = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(folder))
    os.chmod(building, 0o755)
    made = os.path.join(building, "etc")
    os.mkdir(made, 0o755)
    for name in SHOWN:
        _copy(f"/etc/{name}", os.path.join(made, name), name)
    try:
        os.rename(building, folder)
    except OSError:  # another start made it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    _prune(os.path.dirname(folder))


def _copy(source: str, target: str, relative: str) -> None:
    """One entry, as the rules of the module say: links kept (those into /run copied), only what anybody may
    read, nothing of :data:`HIDDEN`."""
    if relative in HIDDEN:
        return
    try:
        info = os.lstat(source)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode) and not _into_run(source):
        os.symlink(os.readlink(source), target)
        return
    with contextlib.suppress(OSError):
        info = os.stat(source)
    readable = info.st_mode & stat.S_IROTH and (not stat.S_ISDIR(info.st_mode) or info.st_mode & stat.S_IXOTH)
    if not readable:
        return
    if stat.S_ISDIR(info.st_mode):
        os.mkdir(target, stat.S_IMODE(info.st_mode))
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(source)):
                _copy(os.path.join(source, name), os.path.join(target, name), f"{relative}/{name}")
    elif stat.S_ISREG(info.st_mode):
        with contextlib.suppress(OSError):
            shutil.copyfile(source, target)
            os.chmod(target, stat.S_IMODE(info.st_mode) & 0o755)


def _into_run(path: str) -> bool:
    return os.path.realpath(path).startswith(("/run/", "/var/run/"))


def _prune(folder: str) -> None:
    with contextlib.suppress(OSError):
        copies = sorted(
            (entry for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")),
            key=lambda entry: entry.stat().st_mtime,
        )
        for old in copies[:-KEEP]:
            shutil.rmtree(old.path, ignore_errors=True)
