"""A review that showed nothing marks nothing; the terminal review; `pr` behind the review gate.

Against the sbx emulator, through `git airlock`, like test_loop.py. The terminal review runs in
a real pseudo-terminal with a real pager.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import stat
import struct
import termios
from pathlib import Path

import pytest

from conftest import Env, airlock, git, write_agent

WORK = """\
i=1; while [ $i -le 120 ]; do echo "line $i"; i=$((i+1)); done > long.txt
printf 'all:\\n\\ttrue\\n' > Makefile
git add long.txt Makefile
git commit -q -m "$(printf 'agent: first \\033]0;pwned\\007 commit\\n\\nWhy: a long file and a Makefile.')"
echo two > two.txt && git add two.txt && git commit -q -m "agent: second"
"""
PLAIN = "echo x > x.txt && git add x.txt && git commit -q -m 'agent: x'\n"
NO_WINDOWS = ("DISPLAY", "WAYLAND_DISPLAY", "VSCODE_IPC_HOOK_CLI")


@pytest.fixture
def headless(hermetic: Env) -> Env:
    """A session with no display, like SSH sessions, cloud VMs and CI runners."""
    for name in NO_WINDOWS:
        hermetic.mp.delenv(name, raising=False)
    return hermetic


def start(project: Path, hermetic: Env, name: str, body: str = WORK) -> str:
    """A sandbox whose commits were fetched; returns its tip."""
    write_agent(hermetic, body)
    assert airlock("--name", name, "up", cwd=project).returncode == 0
    assert airlock("--name", name, "fetch", cwd=project).returncode == 0
    return git(project, "rev-parse", f"refs/remotes/sandbox-{name}/main").strip()


def marks(project: Path) -> str:
    return git(project, "for-each-ref", "--format=%(refname) %(objectname)", "refs/airlock/reviewed/")


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# -- a tool that cannot start, or fails, marks nothing ------------------------------------------------


def test_chosen_vscode_that_cannot_start_marks_nothing(project: Path, headless: Env) -> None:
    start(project, headless, "vs")
    result = airlock("--name", "vs", "review", "--mark", cwd=project, env={"REVIEW_TOOL": "vscode"})
    assert result.returncode == 1
    assert "error: the review tool 'vscode' (from environment (REVIEW_TOOL)) cannot start: `code`" in result.stderr
    assert "nothing was shown and nothing was marked" in result.stderr
    assert "hint: install it, choose another with --tool or REVIEW_TOOL" in result.stderr
    assert "--tool terminal" in result.stderr
    assert marks(project) == ""


def test_configured_command_whose_program_is_missing(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "gone")
    git(project, "config", "difftool.gone.cmd", 'no-such-program "$LOCAL" "$REMOTE"')
    git(project, "config", "diff.tool", "gone")
    result = airlock("--name", "gone", "review", "--mark", cwd=project)
    assert result.returncode == 1
    assert (
        "the review tool 'gone' (from git config diff.tool) cannot start: "
        "`no-such-program` (difftool.gone.cmd) is not installed or not on PATH"
    ) in result.stderr
    assert "eval:" not in result.stderr, "nothing was run to find out"
    assert marks(project) == ""


def test_builtin_tool_whose_program_is_missing(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "bt")
    git(project, "config", "difftool.meld.path", str(hermetic.tmp / "nowhere" / "meld"))
    result = airlock("--name", "bt", "review", "--tool", "meld", "--mark", cwd=project)
    assert result.returncode == 1
    assert f"cannot start: The diff tool meld is not available as '{hermetic.tmp}/nowhere/meld'" in result.stderr
    assert marks(project) == ""


def test_graphical_builtin_needs_a_display(project: Path, headless: Env) -> None:
    tip = start(project, headless, "gui")
    ran = headless.tmp / "meld-ran"
    executable(headless.tmp / "meld", f'#!/bin/sh\nls "$1" "$2" > {ran}\n')
    git(project, "config", "difftool.meld.path", str(headless.tmp / "meld"))
    refused = airlock("--name", "gui", "review", "--tool", "meld", "--mark", cwd=project)
    assert refused.returncode == 1
    assert "cannot start: it needs a graphical session and there is none" in refused.stderr
    assert not ran.exists() and marks(project) == ""
    shown = airlock("--name", "gui", "review", "--tool", "meld", "--mark", cwd=project, env={"DISPLAY": ":99"})
    assert shown.returncode == 0, shown.stderr
    assert ran.exists()
    assert marks(project) == f"refs/airlock/reviewed/gui/main {tip}\n"


@pytest.mark.parametrize("window", [{"DISPLAY": ":99"}, {"VSCODE_IPC_HOOK_CLI": "/tmp/vscode-ipc.sock"}])
def test_default_vscode_runs_where_it_can(project: Path, headless: Env, window: dict[str, str]) -> None:
    """With a display, or in a VS Code remote terminal, the default still opens VS Code."""
    tip = start(project, headless, "code")
    bindir = headless.tmp / "bin"
    bindir.mkdir()
    executable(bindir / "code", f'#!/bin/sh\nprintf "%s\\n" "$@" > {headless.tmp / "code-args"}\n')
    headless.mp.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    result = airlock("--name", "code", "review", "--mark", cwd=project, env=window)
    assert result.returncode == 0, result.stderr
    args = (headless.tmp / "code-args").read_text().splitlines()
    assert args[:3] == ["--wait", "--new-window", "--diff"] and args[3].endswith("/left/")
    assert marks(project) == f"refs/airlock/reviewed/code/main {tip}\n"


def test_difftool_that_fails_marks_nothing(project: Path, hermetic: Env) -> None:
    """git before 2.42 drops a --dir-diff tool's exit status; git-airlock records it itself."""
    start(project, hermetic, "ft")
    git(project, "config", "difftool.fails.cmd", 'ls "$LOCAL" "$REMOTE" >/dev/null; exit 3')
    result = airlock("--name", "ft", "review", "--tool", "fails", "--mark", cwd=project)
    assert result.returncode == 1
    assert "error: the difftool 'fails' exited with status 3; nothing was marked" in result.stderr
    assert marks(project) == ""


def test_tool_names_are_names(project: Path, hermetic: Env) -> None:
    """git sources mergetools/<name>: a name with a slash would make it source any file."""
    start(project, hermetic, "nm")
    result = airlock("--name", "nm", "review", "--tool", "../../../tmp/x", "--mark", cwd=project)
    assert result.returncode == 1
    assert "that is not a tool name" in result.stderr
    assert marks(project) == ""


# -- the terminal review -----------------------------------------------------------------------------


def test_default_falls_back_to_the_terminal_review(project: Path, headless: Env) -> None:
    tip = start(project, headless, "tr")
    shown = airlock("--name", "tr", "review", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "the default review tool, vscode, cannot start here" in shown.stderr
    out = shown.stdout
    assert out.startswith("sandbox-tr/main: 2 commit(s) not in main, oldest first\n")
    first, second = out.index("commit 1/2 "), out.index("commit 2/2 ")
    assert first < out.index("+line 120") < second < out.index("+two")
    assert "Author: Sandbox Agent <" in out and "Date:   2026-01-01 00:00:00 +0000" in out
    assert "    agent: first ^[]0;pwned^G commit\n\n    Why: a long file and a Makefile.\n" in out
    assert "\x1b" not in out and "\x07" not in out
    assert "  ! Makefile: make runs it" in out
    assert "look closely: these commits change files that can run code on this machine:" in shown.stderr
    assert marks(project) == "", "no terminal to answer on: nothing marked"
    marked = airlock("--name", "tr", "review", "--mark", cwd=project)
    assert marked.returncode == 0, marked.stderr
    assert marks(project) == f"refs/airlock/reviewed/tr/main {tip}\n"


class Screen:
    """``git airlock ARGS`` on a real pseudo-terminal of 24 rows, read as a person would see it."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the command on its terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
                os.chdir(cwd)
                os.execvpe("git", ["git", "airlock", *args], env)
            finally:
                os._exit(127)
        self.seen = ""

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        found = re.compile(pattern)
        while not found.search(self.seen):
            ready, _, _ = select.select([self.fd], [], [], timeout)
            assert ready, f"no {pattern!r} on the terminal; it showed:\n{self.seen}"
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the command ended
                chunk = b""
            assert chunk, f"the command ended without showing {pattern!r}; it showed:\n{self.seen}"
            self.seen += chunk.decode(errors="replace")
        return self.seen

    def exit_status(self) -> int:
        while True:
            try:
                if not os.read(self.fd, 65536):
                    break
            except OSError:
                break
        os.close(self.fd)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


@pytest.fixture
def pager(headless: Env) -> dict[str, str]:
    """The environment of a person with a real pager (git's own default, `less`) and no display."""
    found = shutil.which("less") or shutil.which("more")
    if found is None:
        pytest.skip("neither less nor more is installed")
    env = {**os.environ, "GIT_PAGER": found, "PAGER": found, "TERM": "xterm"}
    env.pop("LESS", None)
    return env


@pytest.mark.parametrize("answer", ["y", "n"])
def test_terminal_review_in_a_real_terminal(project: Path, hermetic: Env, pager: dict[str, str], answer: str) -> None:
    tip = start(project, hermetic, "pty")
    screen = Screen(project, ["--name", "pty", "review"], pager)
    shown = screen.wait_for(r"commit 1/2 [0-9a-f]{40}")
    shown = screen.wait_for(r"Makefile: make runs it")
    assert "^[]0;pwned^G" in shown and "\x1b]0;pwned" not in shown
    assert "as reviewed?" not in shown, "the question waits for the pager"
    screen.type("q")
    screen.wait_for(r"Mark sandbox-pty/main \([0-9a-f]{10}\) as reviewed\? \[y/N\]")
    screen.type(f"{answer}\n")
    if answer == "y":
        screen.wait_for(f"marked sandbox-pty/main at {tip[:10]} as reviewed")
    assert screen.exit_status() == 0
    assert marks(project) == (f"refs/airlock/reviewed/pty/main {tip}\n" if answer == "y" else "")


# -- pr: the same gate as merge ----------------------------------------------------------------------


@pytest.fixture
def origin(project: Path, hermetic: Env) -> Path:
    """A real bare repository the project pushes to, with the project's main; no gh on PATH."""
    path = hermetic.tmp / "origin.git"
    git(hermetic.tmp, "init", "-q", "--bare", str(path))
    git(project, "remote", "add", "origin", str(path))
    git(project, "push", "-q", "origin", "main")
    if shutil.which("gh"):
        pytest.skip("gh is installed: pr would open a real pull request")
    return path


def heads(origin: Path) -> list[str]:
    return [line.split("\t")[1] for line in git(origin, "ls-remote", str(origin)).splitlines()]


def test_pr_refuses_unreviewed_work_and_pushes_it_on_yes(project: Path, hermetic: Env, origin: Path) -> None:
    tip = start(project, hermetic, "p", PLAIN)
    refused = airlock("--name", "p", "pr", cwd=project)
    assert refused.returncode == 1
    assert "error: 1 of the 1 commit(s) to push were not reviewed" in refused.stderr
    assert "hint: review them with `git airlock review` (or pass --yes to push anyway)" in refused.stderr
    assert heads(origin) == ["HEAD", "refs/heads/main"]
    assert marks(project) == ""
    pushed = airlock("--name", "p", "pr", "--yes", cwd=project)
    assert pushed.returncode == 0, pushed.stderr
    assert git(origin, "rev-parse", "refs/heads/airlock/p").strip() == tip
    assert "marked sandbox-p/main" in pushed.stdout
    assert "pushed airlock/p; open a pull request against main on your git host" in pushed.stdout
    assert marks(project) == f"refs/airlock/reviewed/p/main {tip}\n"


def test_pr_asks_about_host_code_even_when_reviewed(project: Path, hermetic: Env, origin: Path) -> None:
    tip = start(project, hermetic, "hc")
    assert airlock("--name", "hc", "approve", cwd=project).returncode == 0
    refused = airlock("--name", "hc", "pr", "--yes", cwd=project)
    assert refused.returncode == 1
    assert "Makefile: make runs it" in refused.stderr
    assert "error: not pushed: the sandbox changed files that can run code on this machine" in refused.stderr
    assert "pass --allow-host-code to push them anyway" in refused.stderr
    assert heads(origin) == ["HEAD", "refs/heads/main"]
    pushed = airlock("--name", "hc", "pr", "--allow-host-code", cwd=project)
    assert pushed.returncode == 0, pushed.stderr
    assert git(origin, "rev-parse", "refs/heads/airlock/hc").strip() == tip


def test_pr_without_required_review_pushes_but_marks_nothing(project: Path, hermetic: Env, origin: Path) -> None:
    tip = start(project, hermetic, "rr", PLAIN)
    git(project, "config", "airlock.requireReview", "false")
    pushed = airlock("--name", "rr", "pr", cwd=project)
    assert pushed.returncode == 0, pushed.stderr
    assert "warning: 1 of the 1 commit(s) to push were not reviewed" in pushed.stderr
    assert git(origin, "rev-parse", "refs/heads/airlock/rr").strip() == tip
    assert marks(project) == "", "nobody vouched for it"


def test_pr_confirmed_passes_the_blocking_hook(project: Path, hermetic: Env, origin: Path) -> None:
    """The mark is written before the push, so a pre-push hook in block mode sees the user's yes."""
    tip = start(project, hermetic, "hk", PLAIN)
    assert airlock("hooks", "install", cwd=project).returncode == 0
    git(project, "config", "airlock.prePush", "block")
    pushed = airlock("--name", "hk", "pr", "--yes", cwd=project)
    assert pushed.returncode == 0, pushed.stderr
    assert git(origin, "rev-parse", "refs/heads/airlock/hk").strip() == tip


def test_pr_push_that_fails_takes_the_mark_back(project: Path, hermetic: Env, origin: Path) -> None:
    start(project, hermetic, "pf", PLAIN)
    git(project, "remote", "set-url", "origin", str(hermetic.tmp / "no-such-origin.git"))
    failed = airlock("--name", "pf", "pr", "--yes", cwd=project)
    assert failed.returncode == 1
    assert "the push failed, so the review mark of sandbox-pf/main is back where it was" in failed.stderr
    assert marks(project) == ""
