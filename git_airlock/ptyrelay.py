"""A pseudo-terminal of its own for a sandbox in the foreground, relayed by the host (as ``docker run -it``).

A sandbox that inherits the user's terminal can change its modes (raw, no echo, another window
size) for the shell that comes after it, and can make the terminal emulator type: it answers
queries such as a title report (``ESC [ 21 t``) or a cursor position report (``ESC [ 6 n``) on
its input, which the user's shell reads once the sandbox has exited. So the sandbox gets a fresh
pty instead, whose master this process holds. The user's terminal is put in raw mode and bytes
are relayed both ways (Ctrl-C travels as a byte, and the sandbox's own line discipline makes a
SIGINT of it); window size changes are passed on; on the way out the user's terminal gets its
modes back, and the answers still on their way to it are swallowed.

Without a terminal on any standard descriptor there is nothing to relay, and the sandbox gets no
terminal at all: it runs in a session of its own, so ``/dev/tty`` cannot be opened inside (it
would be the user's terminal when ``up`` runs redirected from an interactive shell).

The relay handles signals, so it runs in the main thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import secrets
import select
import signal
import struct
import subprocess
import termios
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from git_airlock import process

STANDARD = (0, 1, 2)
CHUNK = 65536
QUIET = 0.3
"""How long the user's terminal may stay silent before its answer at exit is given up on (a terminal
that answers no query)."""
PATIENCE = 3.0
"""The longest the wait for that answer lasts, however much else the terminal sends meanwhile."""
PROBES = 3
"""Cursor positions asked for at exit: to fake the answer, the agent would have to guess them all."""
ENDING = (signal.SIGHUP, signal.SIGTERM)
GRACE = 5.0
"""How long an interrupted sandbox has to end on SIGTERM (its egress gate cleans up) before SIGKILL."""


class _Ended(BaseException):
    """SIGHUP or SIGTERM reached the relay: the sandbox ends and the terminal is restored, then the
    signal does what it would have done."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run(argv: list[str], cwd: str | None, env: dict[str, str], started: Callable[[], object] | None = None) -> int:
    """Run ``argv`` to its end with a terminal of its own when the user has one, and return its exit
    status (negative: the signal that ended it, as subprocess). ``started`` is called once the process
    exists."""
    ttys = [fd for fd in STANDARD if os.isatty(fd)]
    if not ttys:
        return _run_detached(argv, cwd, env, started)
    try:
        return _run_relayed(argv, cwd, env, started, ttys)
    except _Ended as ended:
        os.kill(os.getpid(), ended.signum)  # our handler is gone by now: the signal has its usual effect
        return -ended.signum


# -- starting the sandbox ---------------------------------------------------------------------------


def _spawn(
    argv: list[str],
    cwd: str | None,
    env: dict[str, str],
    terminal: int | None = None,
    ttys: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session; with ``terminal`` (a pty's slave) on the standard descriptors
    ``ttys`` and as its controlling terminal, so that job control works inside."""
    given = {fd: terminal if fd in ttys else None for fd in STANDARD}
    try:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=given[0],
            stdout=given[1],
            stderr=given[2],
            start_new_session=True,
            preexec_fn=functools.partial(_take_terminal, ttys[0]) if ttys else None,
        )
    except FileNotFoundError as exc:
        raise process.not_found(argv[0]) from exc


def _take_terminal(fd: int) -> None:
    """In the child, a session leader by now: make the terminal on ``fd`` its controlling terminal."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _run_detached(argv: list[str], cwd: str | None, env: dict[str, str], started: Callable[[], object] | None) -> int:
    """No terminal to relay: a plain wait, the sandbox in a session of its own (no controlling terminal)."""
    child = _spawn(argv, cwd, env)
    with child:
        try:
            if started is not None:
                started()
            return child.wait()
        except BaseException:  # Ctrl-C: as subprocess.run does, the child goes too
            child.kill()
            raise


def _run_relayed(
    argv: list[str], cwd: str | None, env: dict[str, str], started: Callable[[], object] | None, ttys: list[int]
) -> int:
    """The sandbox on a fresh pty (on those standard descriptors that are the user's terminal, ``ttys``),
    relayed until it exits; the user's terminal as it was afterwards, however the run ended."""
    user = ttys[0]
    display = next((fd for fd in (1, 2) if fd in ttys), user)
    keyboard = 0 if 0 in ttys else None
    master, slave = os.openpty()
    try:
        _copy_terminal(user, slave)
        os.set_blocking(master, False)
        with _raw(keyboard), _signals(lambda: _copy_size(user, master)) as wake:
            child = _spawn(argv, cwd, env, slave, ttys)
            os.close(slave)
            slave = -1
            try:
                if started is not None:
                    started()
                _Relay(master, keyboard, display, wake, child).pump()
                return child.wait()
            finally:
                if child.poll() is None:
                    _end(child)
                if keyboard is not None and _same_terminal(keyboard, display):
                    with contextlib.suppress(OSError, termios.error):
                        _settle(keyboard, display)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def _end(child: subprocess.Popen[bytes]) -> None:
    """End a sandbox the relay was interrupted in: SIGTERM, as `stop` does, then SIGKILL if it lingers."""
    child.terminate()
    try:
        child.wait(GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


# -- the user's terminal ----------------------------------------------------------------------------


def _copy_size(source: int, target: int) -> None:
    """Give ``target`` the window size of ``source`` (on a pty's master: the kernel signals SIGWINCH inside)."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(target, termios.TIOCSWINSZ, fcntl.ioctl(source, termios.TIOCGWINSZ, bytes(8)))


def _copy_terminal(source: int, target: int) -> None:
    """The sandbox's terminal starts with the modes and size of the user's."""
    termios.tcsetattr(target, termios.TCSANOW, termios.tcgetattr(source))
    _copy_size(source, target)


def _same_terminal(one: int, other: int) -> bool:
    """Whether two descriptors are one terminal: only then can an answer to what one shows be read on the other."""
    return os.fstat(one).st_rdev == os.fstat(other).st_rdev


@contextlib.contextmanager
def _raw(fd: int | None) -> Iterator[None]:
    """The user's terminal in raw mode while the sandbox runs (every key is the sandbox's, Ctrl-C too),
    and its modes back afterwards, however the run ended."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


def _ending(signum: int, frame: FrameType | None) -> None:
    for number in ENDING:  # one is enough: the clean-up it starts must not be cut short
        signal.signal(number, signal.SIG_IGN)
    raise _Ended(signum)


@contextlib.contextmanager
def _signals(resized: Callable[[], None]) -> Iterator[int]:
    """Our signal handlers while the relay runs, and a pipe every signal writes to (its read end).

    The pipe wakes the relay's select as the child exits (SIGCHLD) without a race: the byte is written
    by the C-level handler even when the signal arrives just before select starts."""
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    handlers: dict[int, Callable[[int, FrameType | None], object]] = {
        signal.SIGCHLD: lambda signum, frame: None,
        signal.SIGWINCH: lambda signum, frame: resized(),
    }
    handlers.update({number: _ending for number in ENDING if signal.getsignal(number) is not signal.SIG_IGN})
    previous_fd = signal.set_wakeup_fd(woken)
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        yield wake
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(wake)
        os.close(woken)


# -- relaying ---------------------------------------------------------------------------------------


class _Relay:
    """Bytes both ways between the user's terminal and the sandbox's pty master, until the sandbox exits."""

    def __init__(self, master: int, keyboard: int | None, display: int, wake: int, child: subprocess.Popen[bytes]):
        self.master = master
        self.keyboard = keyboard
        self.display: int | None = display
        self.wake = wake
        self.child = child
        self.typed = b""
        """Keys read from the user that the sandbox's terminal has not taken yet."""
        self.open = True
        """False once every descriptor of the sandbox's terminal is closed."""

    def pump(self) -> None:
        """Relay until the sandbox has exited, then show what it wrote last. Keys wait while the sandbox's
        terminal takes no more (it reads nothing), but its output never waits for them: both could block."""
        while self.child.poll() is None:
            readers = [self.wake]
            if self.open:
                readers.append(self.master)
                if self.keyboard is not None and not self.typed:
                    readers.append(self.keyboard)
            writers = [self.master] if self.open and self.typed else []
            readable, writable, _ = select.select(readers, writers, [])
            if self.wake in readable:
                os.read(self.wake, CHUNK)
            if self.master in readable:
                self.show()
            if self.keyboard in readable:
                self.read_keys()
            if self.master in writable:
                self.type_keys()
        while self.open and self.show():  # what it wrote last, still in the pty
            pass

    def show(self) -> bool:
        """Copy what the sandbox wrote to the user's terminal; False when nothing is left there now."""
        try:
            data = os.read(self.master, CHUNK)
        except BlockingIOError:
            return False
        except OSError:  # EIO: the last descriptor of the sandbox's terminal was closed
            data = b""
        if not data:
            self.open = False
            return False
        if self.display is not None:
            try:
                _write_all(self.display, data)
            except OSError:  # the user's terminal is gone: the sandbox still must not block on its output
                self.display = None
        return True

    def read_keys(self) -> None:
        assert self.keyboard is not None
        try:
            self.typed = os.read(self.keyboard, CHUNK)
        except OSError:
            self.typed = b""
        if not self.typed:  # hung up
            self.keyboard = None

    def type_keys(self) -> None:
        try:
            self.typed = self.typed[os.write(self.master, self.typed) :]
        except BlockingIOError:
            pass
        except OSError:
            self.typed = b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- swallowing late answers ------------------------------------------------------------------------


def _settle(keyboard: int, display: int) -> None:
    """Swallow what the user's terminal is still to say: the answers to queries the agent printed last
    would otherwise be typed into the user's shell.

    Pending input is discarded; then the terminal is asked for the cursor position, at a few random
    places (put back afterwards), and everything it sends is read and dropped up to that answer.
    Terminals answer in order, so every earlier answer is gone by then; an agent cannot end the wait
    early by asking for the position itself, as it cannot know the places. A terminal that answers
    nothing costs ``QUIET`` seconds; whatever it sends meanwhile is dropped."""
    termios.tcflush(keyboard, termios.TCIFLUSH)
    rows, columns = _size(display)
    if not rows or not columns or os.environ.get("TERM", "dumb") == "dumb":  # one that knows no escape sequence
        return
    places = random_places(rows, columns)
    _write_all(display, position_query(places))
    if not discard_until(keyboard, position_answer(places)):
        termios.tcflush(keyboard, termios.TCIFLUSH)


def _size(fd: int) -> tuple[int, int]:
    """Rows and columns of a terminal (0 when nobody told it)."""
    rows, columns, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, columns


def random_places(rows: int, columns: int, count: int = PROBES) -> list[tuple[int, int]]:
    """``count`` screen positions (row, column, from 1), picked so that nobody can predict them."""
    return [(secrets.randbelow(rows) + 1, secrets.randbelow(columns) + 1) for _ in range(count)]


def position_query(places: Sequence[tuple[int, int]]) -> bytes:
    """Save the cursor, ask for its position at each place in turn (DSR 6), and put it back."""
    moves = b"".join(b"\x1b[%d;%dH\x1b[6n" % place for place in places)
    return b"\x1b7" + moves + b"\x1b8"


def position_answer(places: Sequence[tuple[int, int]]) -> bytes:
    """What a terminal answers to :func:`position_query`: a cursor position report (CPR) per place."""
    return b"".join(b"\x1b[%d;%dR" % place for place in places)


def discard_until(fd: int, wanted: bytes, quiet: float = QUIET, patience: float = PATIENCE) -> bool:
    """Read and drop everything from ``fd`` up to and including ``wanted``; False if it did not come
    (``fd`` stayed silent for ``quiet`` seconds, or ``patience`` ran out, or it ended)."""
    now = time.monotonic()
    silent, give_up = now + quiet, now + patience
    seen = b""
    while wanted not in seen:
        left = min(silent, give_up) - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return False
        seen = seen[-len(wanted) :] + chunk
        silent = time.monotonic() + quiet
    return True
