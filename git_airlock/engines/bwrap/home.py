"""Writing into the agent's HOME from the host (``--seed-config``) without following what the agent planted.

The sandbox's HOME persists across runs and the agent can leave anything in
it: a symlink at ``~/.claude/CLAUDE.md`` to the user's ``~/.bashrc`` would turn
an ordinary copy into the host writing the agent's choice of file. So every
step is taken relative to a directory descriptor opened with ``O_NOFOLLOW``
(a link where a folder should be is refused), and the file is written as a
new file that is then renamed over the name: a rename replaces whatever the
name was, a link included, and never writes through it. What the host writes there is given
to the sandbox's root (``owner``), as if the agent had written it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Mapping

from git_airlock.errors import AirlockError

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_JSON = 16 * 1024 * 1024
"""Bytes of an agent's JSON file read before merging (it could be made huge)."""


Owner = tuple[int, int] | None
"""The host uid and gid of the sandbox's root, when files the host makes must be given to it."""


def copy_into(home: str, relative: str, source: str, owner: Owner = None, kept: bool = False) -> None:
    """Copy the host file ``source`` to ``home/relative``, creating folders as needed."""
    with open(source, "rb") as reader:
        content = reader.read()
    write_into(home, relative, content, os.stat(source).st_mode & 0o755, owner, kept)


def merge_json(home: str, relative: str, values: Mapping[str, object], owner: Owner = None, kept: bool = False) -> None:
    """Merge ``values`` into the JSON file ``home/relative`` (the agent's own settings, kept otherwise).

    The file is the agent's and may hold anything: it is read without following a link, and
    whatever is not a JSON object there is replaced rather than trusted.
    """
    current = _read_json(home, relative)
    write_into(home, relative, json.dumps(_merged(current, values), indent=2).encode(), 0o600, owner, kept)


def _merged(current: object, values: Mapping[str, object]) -> dict[str, object]:
    merged = dict(current) if isinstance(current, dict) else {}
    for key, value in values.items():
        if isinstance(value, dict):
            merged[key] = _merged(merged.get(key), value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *(item for item in value if item not in merged[key])]
        else:
            merged[key] = value
    return merged


def _read_json(home: str, relative: str) -> object:
    try:
        folder = _open_folder(home, relative.split("/")[:-1], relative, create=False)
    except (AirlockError, FileNotFoundError):
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a planted FIFO must not hang us
    try:
        fd = os.open(relative.split("/")[-1], flags, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder opens too, and would not read
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            return json.loads(handle.read(MAX_JSON))
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return None


def write_into(home: str, relative: str, content: bytes, mode: int, owner: Owner = None, kept: bool = False) -> None:
    """Write ``content`` to ``home/relative`` as a new file renamed into place, creating folders as needed.

    ``kept``: ``home`` is the agent's state kept for the user (``agentstate``), not one sandbox's HOME."""
    parts = relative.split("/")
    folder = _open_folder(home, parts[:-1], relative, create=True, owner=owner)
    try:
        _write_new(folder, parts[-1], content, mode, owner)
    except OSError as exc:
        if kept:
            path = os.path.join(home, relative)
            raise AirlockError(
                f"cannot write {path} in the agent's state kept for you: {exc.strerror}",
                hint=f"a sandbox left something there: remove it (`rm -r {path}`), or turn airlock.keepAgentState off",
            ) from exc
        raise AirlockError(
            f"cannot write ~/{relative} in the sandbox's HOME: {exc.strerror}",
            hint="look at it inside the sandbox (`git airlock shell`), or run without --seed-config",
        ) from exc
    finally:
        os.close(folder)


def _open_folder(home: str, folders: list[str], relative: str, create: bool, owner: Owner = None) -> int:
    """A descriptor of ``home/folders...``, each step taken without following a link."""
    if any(part in ("", ".", "..") for part in [*folders, relative.rsplit("/", 1)[-1]]):
        raise AirlockError(f"cannot write {relative!r}: not a plain path", hint="names come from the agent table")
    folder = os.open(home, _DIRECTORY)
    for index, part in enumerate(folders):
        made = False
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=folder)
                made = True
        try:
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
            if made and owner:
                os.fchown(inner, *owner)
        except OSError as exc:
            os.close(folder)
            if not create and exc.errno == errno.ENOENT:
                raise FileNotFoundError(relative) from exc
            shown = "/".join(folders[: index + 1])
            raise AirlockError(
                f"~/{shown} in the sandbox's HOME is not a folder (a link?); not writing {relative}",
                hint="remove it inside the sandbox (`git airlock shell`), or run without --seed-config",
            ) from exc
        os.close(folder)
        folder = inner
    return folder


def _write_new(folder: int, name: str, content: bytes, mode: int, owner: Owner) -> None:
    temporary = f".{name}.seed-{secrets.token_hex(4)}"
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
    try:
        if owner:
            os.fchown(out, *owner)
        with os.fdopen(out, "wb") as writer:
            writer.write(content)
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
