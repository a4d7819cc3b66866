"""One lifecycle operation per sandbox at a time.

Two ``up`` of one stopped sandbox started together would both find it stopped and both
start an agent on one clone; two ``up`` of a new sandbox would both clone into one folder;
an ``rm`` during an ``up`` would delete what is being built. Each of ``up``, ``run``,
``stop``, ``rm``, ``commit``, ``save`` and ``fetch`` therefore holds an exclusive ``flock`` on a
file named after the sandbox while it changes it. The second caller does not wait: it is
told who holds the sandbox (the holder writes its operation and pid into the file).

A held lock is re-entered for free by the same process (``rm`` fetches, ``run`` fetches
after the agent), and the kernel drops it when its holder exits, however it exits: no
stale lock survives a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Callable, Iterator

from git_airlock.errors import AirlockError

_HELD: dict[str, int] = {}
"""Lock file descriptors this process holds, by sandbox name."""


@contextlib.contextmanager
def sandbox_lock(name: str, operation: str) -> Iterator[Callable[[], None]]:
    """Hold sandbox ``name`` for ``operation`` until the block ends, or fail at once naming who holds it.

    Yields a function that gives the lock back early (``up``, once its agent runs)."""
    if name in _HELD:
        yield lambda: None
        return
    fd = acquire(name, operation)
    try:
        yield functools.partial(release, name, fd)
    finally:
        release(name, fd)


def acquire(name: str, operation: str) -> int:
    """Take the lock (see :func:`sandbox_lock`); the descriptor to :func:`release`."""
    path = lock_path(name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            os.close(fd)
            # the holder writes who it is just after it takes the lock: between the two, nobody is named
            busy = f"{holder[0]} in progress, pid {holder[1]}" if len(holder) == 2 else "another command is starting"
            raise AirlockError(
                f"sandbox {name} is busy ({busy})",
                hint="wait for that command to finish, then run yours again",
            ) from None
        if _still_there(fd, path):
            break
        os.close(fd)  # `rm` removed the file while we waited for it: lock the one there now
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{operation} {os.getpid()}\n".encode(), 0)
    _HELD[name] = fd
    return fd


def lock_path(name: str) -> str:
    from platformdirs import user_state_dir

    return os.path.join(user_state_dir("git-airlock"), "locks", f"{name}.lock")


def forget(name: str) -> None:
    """Remove the lock file of a sandbox that is gone, while holding it (a command that opened the file
    before sees that it was removed, and locks the new one instead: see :func:`acquire`)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path(name))


def _still_there(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False


def release(name: str, fd: int) -> None:
    """Give the lock back (idempotent: ``up`` gives it back as soon as its agent has started)."""
    if _HELD.get(name) != fd:
        return
    del _HELD[name]
    os.ftruncate(fd, 0)
    os.close(fd)
