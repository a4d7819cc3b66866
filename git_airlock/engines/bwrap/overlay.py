"""The copy-on-write working tree: one shared checkout per commit, one layer per sandbox.

Each commit is checked out once into a read-only cache that every sandbox
made from it shares (the overlay's lower layer); a sandbox's own changes go to
its ``upper/`` layer. The overlay is mounted in a private mount namespace
(``unshare --user --map-root-user --mount``) that exists only for the
sandbox's processes, so creating a sandbox costs no checkout, whatever the
repository's size. The mount is one ``sh`` line with its arguments passed
as positional parameters (nothing is interpolated into it), then ``exec``
of what follows, usually bwrap: a shell starts in a millisecond, an
interpreter in tens.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from git_airlock import process
from git_airlock.engines.bwrap.layout import Paths, SandboxMeta, make_removable


def usable(probe_root: str) -> bool:
    """Whether this kernel lets us mount an overlay in a user namespace (Linux 5.11+), tried for real."""
    if not tools() or re.search(r"[,:\\]", probe_root):
        return False
    os.makedirs(probe_root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=probe_root) as scratch:
        dirs = [os.path.join(scratch, d) for d in ("lower", "upper", "work", "merged")]
        for directory in dirs:
            os.mkdir(directory)
        lower, upper, work, merged = dirs
        tried = process.probe([*prefix(lower, upper, work, merged, read_only=False), "true"])
        make_removable(scratch)
        return tried is not None and tried.returncode == 0


def tools() -> bool:
    return bool(shutil.which("unshare") and shutil.which("mount"))


MOUNT = (
    'mount -t overlay overlay -o "$1" "$2" '
    '|| { echo "git-airlock: cannot mount the sandbox\'s working tree" >&2; exit 125; }; shift 2; exec "$@"'
)


def options(lower: str, upper: str, work: str, read_only: bool) -> str:
    """overlayfs options: the sandbox's layer over the shared checkout; read-only, no writable layer at all."""
    if read_only:
        return f"lowerdir={upper}:{lower}"
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def prefix(lower: str, upper: str, work: str, merged: str, read_only: bool) -> list[str]:
    """The command that mounts the layers at ``merged`` in a private namespace, then runs what follows."""
    mount = ["sh", "-c", MOUNT, "overlay", options(lower, upper, work, read_only), merged]
    return ["unshare", "--user", "--map-root-user", "--mount", "--", *mount]


def sandbox_prefix(paths: Paths, meta: SandboxMeta, read_only: bool = False) -> list[str]:
    """:func:`prefix` for one sandbox, or nothing for a sandbox with a plain checkout."""
    if meta.get("layout") != "overlay":
        return []
    return prefix(meta["lower"], paths.upper, paths.work, paths.merged, read_only)


def build_cache(common_dir: str, commit: str, cache: str) -> None:
    """Check out ``commit`` once into the shared cache (atomically: readers never see half of it)."""
    if os.path.isfile(os.path.join(cache, "index")):
        return
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(cache))
    os.mkdir(os.path.join(tmp, "tree"))
    process.run(
        [
            "git",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.sparseCheckout=false",
            "-c",
            "checkout.workers=0",
            f"--git-dir={common_dir}",
            f"--work-tree={os.path.join(tmp, 'tree')}",
            "read-tree",
            "-u",
            "--reset",
            commit,
        ],
        env={"GIT_INDEX_FILE": os.path.join(tmp, "index")},
    )
    try:
        os.rename(tmp, cache)
    except OSError:  # another sandbox built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


def start(paths: Paths, cache: str) -> None:
    """Give a new sandbox its empty layer and the shared checkout's index (made before the agent ever ran)."""
    for directory in (paths.upper, paths.work, paths.merged):
        os.makedirs(directory, exist_ok=True)
    shutil.copyfile(os.path.join(cache, "index"), os.path.join(paths.git_dir, "index"))
