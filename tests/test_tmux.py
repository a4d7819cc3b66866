"""`--tmux-detached up`, `attach` and `status` against a real tmux server."""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

from conftest import Env, airlock, git, write_agent

AGENT_IN_TMUX = """\
echo "print('v2 from agent')" > app.py
git commit -q -am "agent: work done in tmux"
tmux wait-for -S agent-committed
read answer
"""


def tmux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30)


def test_tmux_detached_attach_status_rm(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, AGENT_IN_TMUX)
    up = airlock("--name", "tm", "--tmux-detached", "up", cwd=project)
    assert up.returncode == 0, up.stderr
    assert "git airlock attach" in up.stderr
    assert tmux("has-session", "-t", "=git-airlock-tm").returncode == 0
    assert tmux("wait-for", "agent-committed").returncode == 0

    status = airlock("--name", "tm", "status", cwd=project).stdout
    assert "tmux:     git-airlock-tm (0 attached client(s))" in status
    assert "sandbox:  tm (running" in status

    # a second terminal attaches: the hook tells us when the client is in
    tmux("set-hook", "-g", "client-attached", "wait-for -S client-in")
    outer = tmux(
        "new-session",
        "-d",
        "-s",
        "outer",
        "-x",
        "100",
        "-y",
        "30",
        "--",
        "env",
        "-u",
        "TMUX",
        "git",
        "-C",
        str(project),
        "airlock",
        "--name",
        "tm",
        "attach",
    )
    assert outer.returncode == 0, outer.stderr
    assert tmux("wait-for", "client-in").returncode == 0
    assert "tmux:     git-airlock-tm (1 attached client(s))" in airlock("--name", "tm", "status", cwd=project).stdout

    assert airlock("--name", "tm", "fetch", cwd=project).returncode == 0
    assert git(project, "log", "-1", "--format=%s", "refs/remotes/sandbox-tm/main").strip() == (
        "agent: work done in tmux"
    )

    removed = airlock("--name", "tm", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert tmux("has-session", "-t", "=git-airlock-tm").returncode != 0


def test_up_refuses_when_the_tmux_session_exists(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    assert tmux("new-session", "-d", "-s", "git-airlock-busy", "--", "cat").returncode == 0
    result = airlock("--name", "busy", "--tmux-detached", "up", cwd=project)
    assert result.returncode == 1
    assert "tmux session 'git-airlock-busy' already exists" in result.stderr
    assert not [call for call in hermetic.sbx_calls() if call[0] in ("run", "create")]


def test_attach_without_session_is_a_clear_error(project: Path, hermetic: Env) -> None:
    result = airlock("--name", "nothing", "attach", cwd=project)
    assert result.returncode == 1
    assert "no tmux session 'git-airlock-nothing'" in result.stderr
    assert "hint: start the agent in one with `git airlock --tmux up`" in result.stderr


def test_attach_inside_tmux_switches_client(project: Path, hermetic: Env) -> None:
    result = airlock("--dry-run", "--name", "sw", "attach", cwd=project, env={"TMUX": "/tmp/x,1,0"})
    assert result.stdout.strip() == "tmux switch-client -t =git-airlock-sw"


def test_tmux_session_name_from_settings(project: Path, hermetic: Env) -> None:
    result = airlock("--dry-run", "--name", "a.b", "--tmux-detached", "up", cwd=project, env={"TMUX_SESSION": "mine"})
    assert "tmux new-session -d -s mine " in result.stdout
    default = airlock("--dry-run", "--name", "a.b", "--tmux-detached", "up", cwd=project)
    assert "tmux new-session -d -s git-airlock-a_b " in default.stdout


def test_the_window_stays_and_says_how_the_agent_ended(project: Path, hermetic: Env) -> None:
    """A detached agent that exits leaves its window, with its exit status and what to do next."""
    write_agent(hermetic, "tmux wait-for go\nexit 3\n")
    assert airlock("--name", "end", "--tmux-detached", "up", cwd=project).returncode == 0
    fifo = hermetic.tmp / "pane"
    os.mkfifo(fifo)
    assert tmux("pipe-pane", "-t", "=git-airlock-end:", "-o", f"cat > {fifo}").returncode == 0
    with open(fifo, "rb") as pane:
        assert tmux("wait-for", "-S", "go").returncode == 0
        shown = b""
        while b"press Enter to close" not in shown:
            ready, _, _ = select.select([pane], [], [], 30)
            assert ready, shown
            shown += os.read(pane.fileno(), 4096)
    assert b"the agent exited with status 3. Next: git airlock diff" in shown
    assert tmux("has-session", "-t", "=git-airlock-end").returncode == 0, "the window stayed"
    tmux("new-session", "-d", "-s", "keep", "--", "cat")  # the server outlives the agent's session
    tmux("set-hook", "-g", "session-closed", "wait-for -S closed")
    assert tmux("send-keys", "-t", "=git-airlock-end:", "Enter").returncode == 0
    assert tmux("wait-for", "closed").returncode == 0
    assert tmux("has-session", "-t", "=git-airlock-end").returncode != 0


def test_status_names_a_tmux_session_only_when_that_exact_one_exists(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    assert tmux("new-session", "-d", "-s", "unrelated", "cat").returncode == 0
    assert tmux("new-session", "-d", "-s", "git-airlock-box-2", "cat").returncode == 0  # a longer name
    status = airlock("--name", "box", "status", cwd=project)
    assert status.returncode == 0, status.stderr
    assert "tmux:     git-airlock-box (no session)" in status.stdout
    assert tmux("new-session", "-d", "-s", "git-airlock-box", "cat").returncode == 0
    status = airlock("--name", "box", "status", cwd=project)
    assert "tmux:     git-airlock-box (0 attached client(s))" in status.stdout
