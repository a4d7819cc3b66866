"""Move bytes between two sockets on an event loop, without copying them through Python.

An established tunnel is most of what the egress gate does, and most of its
cost when data flows: reading into Python objects and writing them out again
copies every byte twice and wakes the interpreter per chunk. On Linux,
``splice(2)`` moves data from a socket into a pipe and from the pipe into the
other socket inside the kernel, so the interpreter only decides *when* to
move, never *what*. Each direction is a small state machine driven by the
event loop's readiness callbacks (one registration per socket and state, no
task or future per chunk), so many tunnels share one thread cheaply; pipes
are reused between tunnels. Where ``splice`` is unavailable (not Linux, or a
socket type that refuses it) the same machine copies through a buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Callable

PIPE_SIZE = 64 * 1024
"""A new pipe's capacity (Linux's default): plenty for requests and responses of an API call."""
BULK_PIPE_SIZE = 1 << 20
"""The capacity a direction's pipe grows to once it carries a bulk transfer: a download moves
at about 1.4x the speed with 1 MiB per splice than with 64 KiB (``bench/egress.py``)."""
BULK_PIPES = 16
"""Pipes one gate grows at a time. Pipe capacity counts against the user's budget
(``fs.pipe-user-pages-soft``, 64 MiB by default), past which Linux gives every new pipe of
that user, in any program, two pages; 16 MiB per gate leaves room for the rest."""
_GROW_AFTER = 1 << 20
"""Bytes after which a direction counts as a bulk transfer (an API call's messages stay below)."""
_SET_PIPE_SIZE = getattr(fcntl, "F_SETPIPE_SZ", 1031)
COPY_SIZE = 256 * 1024
_CAN_SPLICE = hasattr(os, "splice")
_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if _CAN_SPLICE else 0
MAX_PIPES = 128
"""Pipes one gate holds at most (8 MiB of the user's pipe budget at the default size); directions
beyond them copy through a buffer instead, so a sandbox opening hundreds of connections cannot
spend the budget every other program of the user draws on."""


class Pipes:
    """The gate's pipes: empty ones kept for the next tunnels (making and closing one costs three
    system calls per direction of every connection), and the budgets of pipes and grown pipes."""

    def __init__(self, limit: int = MAX_PIPES, bulk: int = BULK_PIPES) -> None:
        self.limit = limit
        self.made = 0
        """Pipes open now, idle or in use."""
        self.idle: list[tuple[int, int]] = []
        self.bulk_left = bulk

    def take(self) -> tuple[int, int] | None:
        """An empty pipe, or None when the gate holds as many as it may."""
        if self.idle:
            return self.idle.pop()
        if self.made >= self.limit:
            return None
        self.made += 1
        return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def grow(self, pipe: tuple[int, int]) -> int:
        """Grow ``pipe`` for a bulk transfer if the budget allows; returns its capacity."""
        if self.bulk_left > 0:
            try:
                size = fcntl.fcntl(pipe[1], _SET_PIPE_SIZE, BULK_PIPE_SIZE)
            except OSError:  # over the user's pipe budget already: stay small
                return PIPE_SIZE
            self.bulk_left -= 1
            return size
        return PIPE_SIZE

    def give(self, pipe: tuple[int, int], empty: bool, capacity: int = PIPE_SIZE) -> None:
        if capacity > PIPE_SIZE:
            self.bulk_left += 1
            if empty:
                try:  # shrinking an empty pipe always succeeds, and gives the budget back
                    fcntl.fcntl(pipe[1], _SET_PIPE_SIZE, PIPE_SIZE)
                except OSError:
                    empty = False
        if empty:
            self.idle.append(pipe)
        else:
            self.made -= 1
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        while self.idle:
            self.give(self.idle.pop(), False)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


async def _ready(
    loop: asyncio.AbstractEventLoop, socks: tuple[socket.socket, ...], writing: bool, deadline: float | None
) -> None:
    future = loop.create_future()
    timer = None if deadline is None else loop.call_at(deadline, _expire, future)
    watch, unwatch = (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)
    try:
        for sock in socks:
            watch(sock.fileno(), _wake, future)
        await future
    finally:
        for sock in socks:
            unwatch(sock.fileno())
        if timer is not None:
            timer.cancel()


async def readable(loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float | None = None) -> None:
    """Until ``sock`` has data, or its peer closed (the next read then returns nothing).

    ``deadline`` (loop time) raises ``asyncio.TimeoutError`` when passed: cheaper
    than ``asyncio.wait_for``, which costs a task per call. (The loop is passed
    in everywhere here: asking asyncio for it costs a system call each time.)
    """
    await _ready(loop, (sock,), False, deadline)


async def readable_any(
    loop: asyncio.AbstractEventLoop, socks: tuple[socket.socket, ...], deadline: float | None = None
) -> None:
    """Until one of ``socks`` has data or its peer closed; ``deadline`` as for ``readable``."""
    await _ready(loop, socks, False, deadline)


async def writable(loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float | None = None) -> None:
    """Until ``sock`` can take more data (or has connected); ``deadline`` as for ``readable``."""
    await _ready(loop, (sock,), True, deadline)


async def send_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes) -> None:
    """Send all of ``data`` on a non-blocking socket, waiting on the loop when it is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await writable(loop, sock)


class _Direction:
    """Moves one direction (``src`` to ``dst``); reads only when everything read so far is written."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipes: Pipes,
        src: socket.socket,
        dst: socket.socket,
        done: Callable[[_Direction, OSError | None], None],
    ) -> None:
        self.loop, self.pipes, self.src, self.dst, self.done = loop, pipes, src, dst, done
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.moved = 0
        self.pipe = pipes.take() if _CAN_SPLICE else None  # None: copy through a buffer
        self.capacity = PIPE_SIZE
        self.grow_at = _GROW_AFTER
        """Bytes moved at which to ask for a bulk pipe (again, after a refusal: others may have ended)."""
        self.in_pipe = 0
        self.unsent = memoryview(b"")
        self.finished = False

    def start(self) -> None:
        self.loop.add_reader(self.src_fd, self._on_readable)

    def _on_readable(self) -> None:
        """One pipeful per wake-up (at most 1 MiB): a bulk transfer never holds up the other tunnels."""
        count = self._read()
        if count is None:
            return
        if not count:
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)
            self._finish(None)
            return
        self.moved += count
        if not self._flush():
            self.loop.remove_reader(self.src_fd)
            self.loop.add_writer(self.dst_fd, self._on_writable)

    def _read(self) -> int | None:
        """Bytes taken from ``src`` (0 at its end); None when it has none now or failed."""
        try:
            if self.pipe is not None:
                try:
                    self.in_pipe = os.splice(self.src_fd, self.pipe[1], self.capacity, flags=_FLAGS)
                    if self.moved > self.grow_at and self.capacity == PIPE_SIZE:
                        self.capacity = self.pipes.grow(self.pipe)
                        self.grow_at = self.moved + _GROW_AFTER
                    return self.in_pipe
                except OSError as exc:
                    if exc.errno != errno.EINVAL or self.moved:
                        raise
                    self.pipes.give(self.pipe, True)  # this socket refuses splice: copy instead
                    self.pipe = None
            data = self.src.recv(COPY_SIZE)
            self.unsent = memoryview(data)
            return len(data)
        except BlockingIOError:
            return None
        except OSError as exc:
            self._finish(exc)
            return None

    def _on_writable(self) -> None:
        if self._flush() and not self.finished:
            self.loop.remove_writer(self.dst_fd)
            self.loop.add_reader(self.src_fd, self._on_readable)

    def _flush(self) -> bool:
        """Write what was read; False while ``dst`` is full (an error finishes the direction)."""
        try:
            while self.in_pipe and self.pipe is not None:  # bytes wait in a pipe only while there is one
                self.in_pipe -= os.splice(self.pipe[0], self.dst_fd, self.in_pipe, flags=_FLAGS)
            while self.unsent:
                self.unsent = self.unsent[self.dst.send(self.unsent) :]
        except BlockingIOError:
            return False
        except OSError as exc:
            self._finish(exc)
        return True

    def _finish(self, error: OSError | None) -> None:
        if not self.finished:
            self.finished = True
            self.loop.remove_reader(self.src_fd)  # no more callbacks for a direction that has ended
            self.loop.remove_writer(self.dst_fd)
            self.done(self, error)

    def close(self) -> None:
        self.loop.remove_reader(self.src_fd)
        self.loop.remove_writer(self.dst_fd)
        if self.pipe is not None:
            self.pipes.give(self.pipe, not self.in_pipe, self.capacity)
            self.pipe = None


async def join(
    loop: asyncio.AbstractEventLoop, pipes: Pipes, a: socket.socket, b: socket.socket, moved: list[int]
) -> None:
    """Tunnel ``a`` <-> ``b`` until both directions end; an error on either side ends both.

    ``moved[0]`` gains the bytes from ``a`` to ``b``, ``moved[1]`` those back.
    The sockets stay open: closing them is the caller's.
    """
    ended = loop.create_future()
    open_directions = 2

    def done(_direction: _Direction, error: OSError | None) -> None:
        nonlocal open_directions
        open_directions -= 1
        if (error is not None or not open_directions) and not ended.done():
            ended.set_result(None)

    directions: list[_Direction] = []
    try:
        directions.append(_Direction(loop, pipes, a, b, done))
        directions.append(_Direction(loop, pipes, b, a, done))
        for direction in directions:
            direction.start()
        await ended
    finally:
        for slot, direction in enumerate(directions):
            direction.close()
            moved[slot] += direction.moved
