"""A sandbox in the foreground gets a pseudo-terminal of its own, relayed by the host (git_airlock.ptyrelay).

The user's terminal is a real pty running an interactive bash (test_escape's Terminal), here with a
window size and an emulator's habit of answering queries it is shown, as terminal windows do.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest
from test_escape import Terminal

from conftest import Env, airlock, run_in_sandbox, sandbox_file
from git_airlock import ptyrelay
from git_airlock.errors import AirlockError

LAG = 0.05
UP = "git airlock --engine bwrap --agent shell --name {name} up -- -c {script}"


class Emulator(Terminal):
    """A terminal window: a size, TERM, and answers typed back to the queries shown on it.

    It answers a cursor position report (``ESC [ 6 n``) with the place of the last cursor move, and
    a title report (``ESC [ 21 t``) with a title that ends in a command line: the attack."""

    QUERIES = re.compile(r"\x1b\[(\d+);(\d+)H|\x1b\[6n|\x1b\[21t")

    def __init__(
        self, cwd: Path, env: Env, title: str = "", rows: int = 24, columns: int = 80, lagging: bool = False
    ) -> None:
        env.mp.setenv("TERM", "xterm")
        super().__init__(cwd)
        self.resize(rows, columns)
        self.title = title
        self.lagging = lagging
        """A step behind, as a busy terminal is: the answers to what it was shown go out once it has been
        shown more, or once the output pauses for ``LAG`` seconds."""
        self.cursor = (1, 1)
        self.answered = 0
        """How far into what was shown the queries have been answered."""
        self.held: list[bytes] = []
        self.position_reports = 0
        self.title_reports = 0

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        found = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not found.search(self.seen):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0, min(left, LAG) if self.held else left))
            self.send_held()  # shown more, or a pause: the answers to what came before go out
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    break
                self.answer()
            else:
                assert time.monotonic() < deadline, f"no {pattern!r} on the terminal; it showed:\n{self.seen}"
        return self.seen

    def answer(self) -> None:
        for query in self.QUERIES.finditer(self.seen, self.answered):
            if query[1]:
                self.cursor = (int(query[1]), int(query[2]))
            elif query[0] == "\x1b[6n":
                self.held.append(b"\x1b[%d;%dR" % self.cursor)
                self.position_reports += 1
            else:
                self.held.append(f"\x1b]l{self.title}\x1b\\".encode())
                self.title_reports += 1
            self.answered = query.end()
        if not self.lagging:
            self.send_held()

    def send_held(self) -> None:
        for answer in self.held:
            os.write(self.fd, answer)
        self.held.clear()

    def device(self) -> str:
        """The user's terminal device, as `tty` in the user's shell says."""
        self.type("echo USER-TTY=$(tty)")
        return re.findall(r"USER-TTY=(/dev/\S+)", self.wait_for(r"USER-TTY=/dev/\S+\r\n"))[-1]

    def prompt_after(self, marker: str) -> None:
        """Wait for ``marker`` and the shell's prompt after it (readline has set its modes by then)."""
        self.wait_for(re.escape(marker) + r"\r\n(\x1b\[\?2004h)?\$ $")


def attributes(device: str) -> tuple[list[object], bytes]:
    """The modes and window size of a terminal, read on its own device."""
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
    try:
        return termios.tcgetattr(fd), fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8))
    finally:
        os.close(fd)


def up(name: str, script: str) -> str:
    return UP.format(name=name, script=shlex.quote(script))


# -- a terminal of its own ------------------------------------------------------------------------


INSIDE = """\
echo "IN-LINKS=$(readlink /proc/$$/fd/0) $(readlink /proc/$$/fd/1) $(readlink /proc/$$/fd/2)"
echo "IN-DEVICE=$(stat -L -c %t:%T /proc/$$/fd/0)"
echo "IN-TTY=$(tty)"
[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo "IN-TERMINAL=$((40+2))"
(exec 3<>/dev/tty) && echo "IN-CONTROLLING=$((40+2))"
"""


def test_the_agents_terminal_is_not_the_users(project: Path, hermetic: Env) -> None:
    terminal = Emulator(project, hermetic)
    try:
        user = terminal.device()
        terminal.type("echo USER-DEVICE=$(stat -L -c %t:%T /proc/self/fd/0)")
        user_device = re.findall(r"USER-DEVICE=(\S+)\r\n", terminal.wait_for(r"USER-DEVICE=\S+\r\n"))[-1]
        terminal.type(up("own", INSIDE) + "; echo DONE-$((40+2))")
        shown = terminal.wait_for("DONE-42")
        links = re.findall(r"IN-LINKS=(.*)\r\n", shown)[-1].split()
        assert len(set(links)) == 1 and links[0].startswith("/dev/pts/") and links[0] != user
        assert re.findall(r"IN-DEVICE=(\S+)\r\n", shown)[-1] != user_device
        assert re.findall(r"IN-TTY=(.*)\r\n", shown)[-1] != user
        assert "IN-TERMINAL=42" in shown  # a terminal all the same, and its controlling one
        assert "IN-CONTROLLING=42" in shown
    finally:
        terminal.close()


def test_the_agents_mode_changes_stay_in_its_terminal(project: Path, hermetic: Env) -> None:
    script = (
        "echo BEFORE-$((1+1)); read -r go; stty raw -echo -opost intr ^G cols 33 rows 7; "
        "echo CHANGED-$((1+1)); read -r done"
    )
    terminal = Emulator(project, hermetic)
    try:
        device = terminal.device()
        terminal.type("echo AT-PROMPT-$((1+1))")
        terminal.prompt_after("AT-PROMPT-2")
        at_prompt = attributes(device)
        terminal.type(up("modes", script) + "; echo DONE-$((1+1))")
        terminal.wait_for("BEFORE-2")
        while_running = attributes(device)
        terminal.type("go")
        terminal.wait_for("CHANGED-2")
        assert attributes(device) == while_running  # what the agent did is not the user's terminal's
        terminal.type("done")
        terminal.prompt_after("DONE-2")
        assert attributes(device) == at_prompt
    finally:
        terminal.close()


# -- what the terminal says back --------------------------------------------------------------------


@pytest.mark.parametrize(
    "queries",
    [r"\033[21t", r"\033[6n\033[21t"],
    ids=["title-report", "own-position-report-first"],  # the agent's own report must not end the wait early
)
def test_answers_to_the_agents_queries_are_never_typed_into_the_users_shell(
    project: Path, hermetic: Env, queries: str
) -> None:
    pwned = hermetic.tmp / "PWNED"
    # a command on a line of its own, whatever precedes it; from a terminal a step behind, so that the answers
    # come when git-airlock is about to give the terminal back (its answers are in order all the same)
    terminal = Emulator(project, hermetic, title=f"\ntouch {pwned}\n", lagging=True)
    try:
        terminal.type(up("answer", f"printf '{queries}'") + "; echo DONE-$((40+2))")
        terminal.wait_for("DONE-42")
        terminal.type("echo AFTER-$((40+2))")  # anything typed into the queue would run before this
        shown = terminal.wait_for("AFTER-42")
        assert not pwned.exists()
        assert terminal.title_reports == 1  # the emulator was asked, and answered
        # nor does the answer to the relay's own question at exit show up as junk on the shell's command line
        assert terminal.position_reports >= ptyrelay.PROBES
        assert re.search(r"\$ echo AFTER-\$\(\(40\+2\)\)\r\n", shown)
        assert "command not found" not in shown
    finally:
        terminal.close()


# -- signals: window size, Ctrl-C, the end of the relay -------------------------------------------


def test_a_new_window_size_reaches_the_agent(project: Path, hermetic: Env) -> None:
    script = (
        "stty size > initial.txt; trap 'stty size > size.txt; exit' WINCH; echo READY-$((1+1)); "
        "while :; do sleep 0.1; done"
    )
    terminal = Emulator(project, hermetic, rows=24, columns=80)
    try:
        terminal.type(up("winch", script) + "; echo DONE-$((40+2))")
        terminal.wait_for("READY-2")
        terminal.resize(30, 100)  # the kernel signals SIGWINCH to the terminal's foreground: git-airlock
        terminal.wait_for("DONE-42", timeout=20)
    finally:
        terminal.close()
    assert sandbox_file(hermetic, "winch", "initial.txt").read_text() == "24 80\n"
    assert sandbox_file(hermetic, "winch", "size.txt").read_text() == "30 100\n"


# an agent that takes its time to clean up after Ctrl-C (it saves its work first): the sandbox must live on
# until it is done, so only the agent may get the SIGINT, not bwrap's process on the host
CLEANS_UP = "trap 'sleep 1; echo SAVED > saved.txt; echo CAUGHT-$((1+1)); exit 3' INT; echo READY-$((1+1)); sleep 30"


@pytest.mark.parametrize("network", ["gated", "deny-all"])
def test_ctrl_c_interrupts_the_agent_not_the_relay(project: Path, hermetic: Env, network: str) -> None:
    if network == "deny-all":
        hermetic.mp.setenv("GLOBAL_NETWORK_POLICY", "deny-all")
    terminal = Emulator(project, hermetic)
    try:
        terminal.type(up("intr", CLEANS_UP) + "; echo STATUS-$?")
        terminal.wait_for("READY-2")
        os.write(terminal.fd, b"\x03")
        shown = terminal.wait_for(r"STATUS-\d+", timeout=20)  # well before the agent's sleep ends
        assert "CAUGHT-2" in shown
        assert "STATUS-0" in shown  # not 130: git-airlock was not interrupted, it saw the agent end
        terminal.type("echo AFTER-$((40+2))")
        terminal.wait_for("AFTER-42")
    finally:
        terminal.close()
    assert sandbox_file(hermetic, "intr", "saved.txt").read_text() == "SAVED\n"


JOB = """\
read -r stat < /proc/$$/stat; set -- ${stat##*) }
echo "JOB=$3 FOREGROUND=$6 OWN=$$"
"""


def test_the_agent_is_its_terminals_foreground_job(project: Path, hermetic: Env) -> None:
    """Keys that signal a job (Ctrl-C, Ctrl-Z, Ctrl-\\) reach the agent's job alone: it leads it, in the foreground."""
    terminal = Emulator(project, hermetic)
    try:
        terminal.type(up("job", JOB) + "; echo DONE-$((40+2))")
        shown = terminal.wait_for("DONE-42")
    finally:
        terminal.close()
    job, foreground, own = re.findall(r"JOB=(\d+) FOREGROUND=(\d+) OWN=(\d+)", shown)[-1]
    assert job == foreground == own


SIGNALS = (
    "grep -E '^Sig(Ign|Blk)' /proc/self/status > signals.txt; (yes | head -c 2; echo \"${PIPESTATUS[*]}\") > pipe.txt"
)


@pytest.mark.parametrize("network", ["gated", "deny-all"])
def test_the_agent_starts_with_every_signal_at_its_default(project: Path, hermetic: Env, network: str) -> None:
    """No signal ignored or blocked: the interpreters that start a sandbox ignore SIGPIPE, and an ignored
    signal outlives exec; a pipeline in the sandbox would then end with "Broken pipe" errors."""
    if network == "deny-all":
        hermetic.mp.setenv("GLOBAL_NETWORK_POLICY", "deny-all")
    assert run_in_sandbox(project, "signals", SIGNALS).returncode == 0
    assert sandbox_file(hermetic, "signals", "signals.txt").read_text().split() == [
        "SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000",
    ]  # fmt: skip
    assert sandbox_file(hermetic, "signals", "pipe.txt").read_text() == "y\n141 0\n"  # yes dies of SIGPIPE


def relay_process(terminal: Terminal, name: str) -> int:
    """The git-airlock process running sandbox ``name`` in the foreground of ``terminal`` (its session:
    one that another test left running elsewhere is not it)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            session = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError, ValueError):
            continue
        if session != terminal.pid:
            continue
        if any(arg.endswith("git-airlock") for arg in argv[:2]) and name in argv and "up" in argv:
            return int(entry.name)
    raise AssertionError(f"no git-airlock process for sandbox {name}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signalled_relay_ends_the_agent_and_gives_the_terminal_back(
    project: Path, hermetic: Env, signum: int
) -> None:
    terminal = Emulator(project, hermetic)
    try:
        device = terminal.device()
        terminal.type("echo AT-PROMPT-$((1+1))")
        terminal.prompt_after("AT-PROMPT-2")
        at_prompt = attributes(device)
        terminal.type(up("term", "echo READY-$((1+1)); sleep 300") + "; echo STATUS-$?")
        terminal.wait_for("READY-2")
        os.kill(relay_process(terminal, "term"), signum)
        terminal.prompt_after(f"STATUS-{128 + signum}")  # it dies of the signal, once it has cleaned up
        assert attributes(device) == at_prompt
        status = airlock("--engine", "bwrap", "--name", "term", "status", cwd=project)
        assert "sandbox:  term (exists but stopped)" in status.stdout
    finally:
        terminal.close()


# -- no terminal at all ---------------------------------------------------------------------------


NO_TTY = "if (exec 3<>/dev/tty) 2>/dev/null; then echo opened; else echo refused; fi > probe.txt"


def test_without_a_terminal_the_agent_cannot_open_one(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "pipes", NO_TTY).returncode == 0  # subprocess.run with its output captured
    assert sandbox_file(hermetic, "pipes", "probe.txt").read_text() == "refused\n"


def test_started_from_a_terminal_but_redirected_the_agent_cannot_open_it(project: Path, hermetic: Env) -> None:
    """The user's shell has a controlling terminal; `up` is run with every descriptor redirected."""
    terminal = Emulator(project, hermetic)
    try:
        terminal.type(up("redirected", NO_TTY) + " < /dev/null 2>&1 | cat; echo DONE-$((40+2))")
        terminal.wait_for("DONE-42")
    finally:
        terminal.close()
    assert sandbox_file(hermetic, "redirected", "probe.txt").read_text() == "refused\n"


# -- the relay on its own ---------------------------------------------------------------------------


RELAY = """\
import os, sys
from git_airlock import ptyrelay
from git_airlock.errors import AirlockError
try:
    status = ptyrelay.run(sys.argv[1:], None, dict(os.environ), lambda: print("STARTED", flush=True))
except AirlockError as error:
    status = str(error)
print("STATUS", status, flush=True)
"""


def relayed(argv: list[str], stdin: str | None = None) -> str:
    """Run ``argv`` through the relay in a process whose output (and input, unless ``stdin`` is given) is
    a terminal; what the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:
        if stdin is not None:
            read, write = os.pipe()
            os.write(write, stdin.encode())
            os.close(write)
            os.dup2(read, 0)
        os.execv(sys.executable, [sys.executable, "-c", RELAY, *argv])
    shown = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the process ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(fd)
    os.waitpid(pid, 0)
    return shown.decode(errors="replace")


def test_the_relay_returns_the_status_as_subprocess_does() -> None:
    assert "STARTED" in relayed(["sh", "-c", "exit 7"])
    assert "STATUS 7" in relayed(["sh", "-c", "exit 7"])
    assert f"STATUS -{signal.SIGTERM}" in relayed(["sh", "-c", "kill -TERM $$"])
    assert ptyrelay.run(["sh", "-c", "exit 5"], None, dict(os.environ)) == 5  # the same without a terminal


def test_the_relay_says_which_program_is_missing() -> None:
    assert "STATUS no-such-program-here: command not found" in relayed(["no-such-program-here"])
    with pytest.raises(AirlockError, match="no-such-program-here: command not found"):
        ptyrelay.run(["no-such-program-here"], None, dict(os.environ))


def test_the_relay_keeps_what_is_not_a_terminal() -> None:
    shown = relayed(
        ["sh", "-c", "read -r line; echo got-$line; [ -t 0 ] || echo pipe-in; [ -t 1 ] && echo tty-out"], "hi\n"
    )
    assert "got-hi" in shown and "pipe-in" in shown and "tty-out" in shown


def test_the_position_answer_is_what_the_query_asks_for() -> None:
    places = [(3, 7), (24, 1), (1, 80)]
    assert ptyrelay.position_query(places) == b"\x1b7\x1b[3;7H\x1b[6n\x1b[24;1H\x1b[6n\x1b[1;80H\x1b[6n\x1b8"
    assert ptyrelay.position_answer(places) == b"\x1b[3;7R\x1b[24;1R\x1b[1;80R"
    picked = ptyrelay.random_places(24, 80)
    assert len(picked) == ptyrelay.PROBES
    assert all(1 <= row <= 24 and 1 <= column <= 80 for row, column in picked)


def test_discarding_reads_up_to_the_answer_and_no_further() -> None:
    wanted = ptyrelay.position_answer([(5, 9), (2, 2)])
    read, write = os.pipe()
    try:
        os.write(write, b"\x1b[1;1R\x1b]ltouch PWNED\n\x1b\\" + wanted[:4])  # the agent's answers, then part of ours
        assert not ptyrelay.discard_until(read, wanted, quiet=0.05)  # the rest of ours never came
        os.write(write, wanted[4:] + b"\x1b[5;9R")
        assert ptyrelay.discard_until(read, wanted[4:])
        os.set_blocking(read, False)
        with pytest.raises(BlockingIOError):
            os.read(read, 100)  # everything read was dropped, however many reads it took
    finally:
        os.close(read)
        os.close(write)


def test_discarding_gives_up_on_a_silent_terminal() -> None:
    read, write = os.pipe()
    try:
        os.write(write, b"\x1b[1;1R")  # an answer, but not to the question asked
        assert not ptyrelay.discard_until(read, b"\x1b[5;9R", quiet=0.05)
    finally:
        os.close(read)
        os.close(write)
