"""`git airlock run`: the agent's exit status is the command's, and it says what the agent committed."""

from __future__ import annotations

import shlex
from pathlib import Path

from conftest import Env, airlock, git, run_in_sandbox, write_agent


def bwrap_run(project: Path, name: str, task: str):
    return airlock("--engine", "bwrap", "--agent", "shell", "--name", name, "run", task, cwd=project)


def test_run_exits_with_the_agents_status_and_counts_its_commits(project: Path, hermetic: Env) -> None:
    first = bwrap_run(project, "r", "echo one > one.txt && git add one.txt && git commit -qm one; exit 3")
    assert first.returncode == 3
    assert "shell exited with status 3 and made 1 new commit(s)" in first.stderr
    assert git(project, "log", "-1", "--format=%s", "sandbox-r/main").strip() == "one"  # fetched already

    again = bwrap_run(project, "r", "echo two > two.txt && git add two.txt && git commit -qm two")
    assert again.returncode == 0
    assert "shell finished and made 1 new commit(s)" in again.stderr  # only this run's commit

    idle = bwrap_run(project, "r", "echo draft > draft.txt")
    assert idle.returncode == 0
    assert "warning: shell finished and made no commit" in idle.stderr


def test_run_on_sbx_passes_the_status_through(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "echo x > x.txt && git add x.txt && git commit -qm x\nexit 3\n")
    result = airlock("--name", "sr", "run", "do it", cwd=project)
    assert result.returncode == 3, result.stderr
    assert "claude exited with status 3 and made 1 new commit(s)" in result.stderr


def test_up_in_the_foreground_keeps_exit_status_zero(project: Path, hermetic: Env) -> None:
    """`up` is the interactive door: leaving the agent is not a failure of `up`."""
    assert run_in_sandbox(project, "u", "exit 3").returncode == 0


def test_after_a_run_the_user_learns_which_host_the_policy_blocked(project: Path, hermetic: Env) -> None:
    """The agent's own error stays in its sandbox; the gate's log names the host and the setting."""
    fetch = "import urllib.request as r\ntry: r.urlopen('http://blocked.example/', timeout=10)\nexcept OSError: pass\n"
    result = bwrap_run(project, "blk", f"python3 -c {shlex.quote(fetch)}; exit 1")
    assert result.returncode == 1
    assert (
        "note: blocked.example:80 was blocked by the network policy; to let this repository's sandboxes reach it: "
        "`git config airlock.preset.extra blocked.example`"
    ) in result.stderr


def test_up_says_where_the_agents_credential_comes_from(project: Path, hermetic: Env) -> None:
    without = run_in_sandbox(project, "auth", "true", "--agent", "claude")  # claude is missing: only the note
    assert "auth: log in inside claude once" in without.stderr
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input="sk-ant-test-123\n")
    assert stored.returncode == 0, stored.stderr
    held = run_in_sandbox(project, "auth", "true", "--agent", "claude")
    assert "auth: claude uses the credential the host holds (anthropic); it never enters the sandbox" in held.stderr
