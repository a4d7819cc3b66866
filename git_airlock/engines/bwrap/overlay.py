"""The copy-on-write working tree: one shared checkout per commit, one layer per sandbox.

Each commit is checked out once into a read-only cache that every sandbox
made from it shares (the overlay's lower layer); a sandbox's own changes go to
its ``upper/`` layer. The overlay is mounted by ``enter.py`` in a private mount
namespace that exists only for the sandbox's processes, so creating a sandbox
costs no checkout, whatever the repository's size. For root, the cache is seen
through an id-mapped view in which it belongs to the sandbox's root, so that the
agent can change its files (copied up into its layer, owned by its own uid).

Whether overlays can be mounted here (and how the sandbox's system layer can be:
``system.py``) is tried for real once per boot and remembered (``probe``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from git_airlock import process
from git_airlock.engines.bwrap import userns
from git_airlock.engines.bwrap.layout import Paths, SandboxMeta, make_removable

HINT = "free space or fix that folder, or `git airlock rm` the sandbox and start a new one"


def mounts(paths: Paths, meta: SandboxMeta, ids: userns.IdMap, read_only: bool = False) -> dict[str, list[list[str]]]:
    """``enter.py``'s mounts for the working tree; none for a sandbox with a plain checkout.

    ``read_only``: the layer is shown over the shared checkout without a writable layer at all."""
    if meta.get("layout") != "overlay":
        return {}
    lower = meta["lower"]
    spec: dict[str, list[list[str]]] = {"idmapped": []}
    if ids.root:
        spec["idmapped"].append([lower, paths.lower_view])
        lower = paths.lower_view
    if read_only:
        options = f"lowerdir={paths.upper}:{lower}"
    else:
        options = f"lowerdir={lower},upperdir={paths.upper},workdir={paths.work}"
    what = f"cannot mount the sandbox's working tree (its layer: {paths.upper})"
    spec["overlays"] = [[options + ",userxattr", paths.merged, what, HINT]]
    return spec


def combine(*parts: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """Mounts of several parts in one ``enter.py`` spec (each kind in the order given)."""
    whole: dict[str, list[list[str]]] = {}
    for part in parts:
        for key, entries in part.items():
            whole.setdefault(key, []).extend(entries)
    return whole


def probe(probe_root: str, fresh: bool = False) -> dict[str, bool]:
    """What this machine can mount for a sandbox, tried for real: ``overlay`` (the working tree's) and
    ``system`` (a layer over the host's system: id-mapped for root, fuse-overlayfs for anybody else).

    The answer is kept for the rest of the boot (``fresh``: try again, as ``doctor`` does)."""
    remembered = os.path.join(probe_root, f"answer-{os.getuid()}.json")
    boot = _boot_id()
    if not fresh:
        try:
            with open(remembered, encoding="utf-8") as handle:
                answer = json.load(handle)
            if answer.get("boot") == boot:
                return {"overlay": bool(answer["overlay"]), "system": bool(answer["system"])}
        except (OSError, ValueError, KeyError):
            pass
    found = {"overlay": _try(probe_root, system=False), "system": False}
    found["system"] = found["overlay"] and _try(probe_root, system=True)
    if not re.search(r"[,:\\]", probe_root):
        from git_airlock.jsonfile import write_json

        write_json(remembered, {"boot": boot, **found})
    return found


def _try(probe_root: str, system: bool) -> bool:
    if re.search(r"[,:\\]", probe_root):
        return False
    ids = userns.scratch_map()
    if system and not ids.root and not (shutil.which("fuse-overlayfs") and os.access("/dev/fuse", os.R_OK | os.W_OK)):
        return False
    os.makedirs(probe_root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=probe_root) as scratch:
        dirs = [os.path.join(scratch, d) for d in ("lower", "upper", "work", "merged", "view")]
        for directory in dirs:
            os.mkdir(directory)
        lower, upper, work, merged, view = dirs
        if ids.chown:
            for directory in (upper, work):
                os.chown(directory, *ids.owner)
        spec: dict[str, list[list[str]]] = {}
        if system and ids.root:  # what the system layer does: root's /usr, seen as the sandbox root's
            spec["idmapped"] = [["/usr", view]]
            lower = view
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        kind = "fuse" if system and not ids.root else "overlays"
        options += ",squash_to_root" if kind == "fuse" else ",userxattr"
        spec[kind] = [[options, merged, "probe", ""]]
        tried = process.probe([*userns.prefix(ids, spec, None), "true"])
        make_removable(scratch)
        return tried is not None and tried.returncode == 0


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


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
    for directory in (paths.upper, paths.work, paths.merged, paths.lower_view):
        os.makedirs(directory, exist_ok=True)
    shutil.copyfile(os.path.join(cache, "index"), os.path.join(paths.git_dir, "index"))
