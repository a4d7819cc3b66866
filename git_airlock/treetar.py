"""A commit's tree as a tar stream, straight from git's objects.

``git archive`` applies the attributes of the tree it archives: a ``.gitattributes`` the agent
committed could name a filter driver of the user's configuration (or git-lfs) and have it run here.
This reads each blob as it is stored (``git cat-file``), so no attribute, filter or ``export-subst``
applies: what the tar holds is exactly what the commit holds. Submodules (gitlinks) become empty
folders.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from typing import IO

from git_airlock.process import scrubbed_env

_GIT = ("git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


def write(repo_root: str, commit: str, out: IO[bytes]) -> None:
    """Write the tree of ``commit`` to ``out`` as an (uncompressed, streamed) tar."""
    listing = subprocess.run(
        [*_GIT, "-C", repo_root, "ls-tree", "-r", "-t", "-z", "--full-tree", commit],
        capture_output=True,
        check=True,
        env=scrubbed_env(),
    ).stdout
    blobs = subprocess.Popen(
        [*_GIT, "-C", repo_root, "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=scrubbed_env(),
    )
    assert blobs.stdin is not None and blobs.stdout is not None
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, errors="surrogateescape") as tar:
            for entry in listing.split(b"\0"):
                if entry:
                    _add(tar, entry, blobs.stdin, blobs.stdout)
    finally:
        blobs.stdin.close()
        blobs.wait()


def _add(tar: tarfile.TarFile, entry: bytes, requests: IO[bytes], answers: IO[bytes]) -> None:
    """One ``ls-tree -z`` entry (``<mode> <type> <oid>\\t<path>``) as a tar member."""
    meta, _, raw_path = entry.partition(b"\t")
    mode, kind, oid = meta.split(b" ")
    info = tarfile.TarInfo(raw_path.decode("utf-8", "surrogateescape"))
    if kind in (b"tree", b"commit"):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    content = _blob(requests, answers, oid)
    if mode == b"120000":
        info.type, info.linkname = tarfile.SYMTYPE, content.decode("utf-8", "surrogateescape")
        tar.addfile(info)
    else:
        info.mode, info.size = (0o755 if mode == b"100755" else 0o644), len(content)
        tar.addfile(info, io.BytesIO(content))


def _blob(requests: IO[bytes], answers: IO[bytes], oid: bytes) -> bytes:
    """One object's content from a running ``git cat-file --batch``."""
    requests.write(oid + b"\n")
    requests.flush()
    header = answers.readline().split()
    size = int(header[2])
    content = answers.read(size)
    answers.read(1)  # the newline after the content
    return content
