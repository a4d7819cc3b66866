"""Writing into the agent's HOME from the host (``--seed-config``) without following what the agent planted.

The sandbox's HOME persists across runs and the agent can leave anything in
it: a symlink at ``~/.claude/CLAUDE.md`` to the user's ``~/.bashrc`` would turn
an ordinary copy into the host writing the agent's choice of file. So every
step is taken relative to a directory descriptor opened with ``O_NOFOLLOW``
(a link where a folder should be is refused), and the file is written as a
new file that is then renamed over the name: a rename replaces whatever the
name was, a link included, and never writes through it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil

from git_airlock.errors import AirlockError

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_into(home: str, relative: str, source: str) -> None:
    """Copy the host file ``source`` to ``home/relative``, creating folders as needed."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise AirlockError(
            f"cannot seed {relative!r}: not a plain path", hint="seed files are named by the agent table"
        )
    folder = os.open(home, _DIRECTORY)
    try:
        for index, part in enumerate(parts[:-1]):
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=folder)
            try:
                inner = os.open(part, _DIRECTORY, dir_fd=folder)
            except OSError as exc:
                shown = "/".join(parts[: index + 1])
                raise AirlockError(
                    f"~/{shown} in the sandbox's HOME is not a folder (a link?); not seeding {relative}",
                    hint="remove it inside the sandbox (`git airlock shell`), or run without --seed-config",
                ) from exc
            os.close(folder)
            folder = inner
        try:
            _write_new(folder, parts[-1], source)
        except OSError as exc:
            raise AirlockError(
                f"cannot seed ~/{relative} in the sandbox's HOME: {exc.strerror}",
                hint="look at it inside the sandbox (`git airlock shell`), or run without --seed-config",
            ) from exc
    finally:
        os.close(folder)


def _write_new(folder: int, name: str, source: str) -> None:
    temporary = f".{name}.seed-{secrets.token_hex(4)}"
    mode = os.stat(source).st_mode & 0o755
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
    try:
        with open(source, "rb") as reader, os.fdopen(out, "wb") as writer:
            shutil.copyfileobj(reader, writer)
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
