"""Bad input gets one clear `error:` line and a `hint:`, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import Env, airlock, git, write_agent


def assert_clear_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"error: {message}" in result.stderr
    assert "\nhint: " in result.stderr


def test_unknown_agent(project: Path) -> None:
    assert_clear_error(airlock("--agent", "hal9000", "up", cwd=project), 1, "unknown agent 'hal9000'")


def test_unknown_command_is_a_usage_error(project: Path) -> None:
    result = airlock("reveiw", cwd=project)
    assert_clear_error(result, 2, "unknown command 'reveiw'")
    assert "did you mean `git airlock review`?" in result.stderr


def test_unknown_option_is_a_usage_error(project: Path) -> None:
    result = airlock("diff", "--bogus", cwd=project)
    assert_clear_error(result, 2, "No such option '--bogus'")
    assert "hint: `git airlock diff -h` shows the usage" in result.stderr


@pytest.mark.parametrize("name", ["bad name", "ends-with-dash-", "x" * 64, "under_score", "-lead"])
def test_invalid_sandbox_names(project: Path, name: str) -> None:
    result = airlock("--name", name, "up", cwd=project)
    assert result.returncode == 1
    assert "error: the sandbox name" in result.stderr
    assert "hint: sandbox names use letters, digits" in result.stderr


@pytest.mark.parametrize("command", ["status", "fetch", "diff", "merge", "review", "up"])
def test_outside_a_repository(tmp_path: Path, hermetic: Env, command: str) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    result = airlock(command, cwd=folder)
    assert result.returncode == 1
    assert "not a git repository" in result.stderr
    assert "hint:" in result.stderr
    assert not (folder / ".git").exists()


@pytest.mark.parametrize("command", ["fetch", "diff", "shell", "stop", "rm"])
def test_no_such_sandbox(project: Path, hermetic: Env, command: str) -> None:
    result = airlock("--name", "ghost", command, cwd=project)
    assert result.returncode == 1
    assert "no sandbox named 'ghost'" in result.stderr
    assert "hint: start one with `git airlock up`" in result.stderr


def test_detached_head_needs_an_explicit_base(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "git commit -q --allow-empty -m x\n")
    assert airlock("--name", "d", "up", cwd=project).returncode == 0
    git(project, "checkout", "-q", "--detach")
    assert_clear_error(airlock("--name", "d", "diff", cwd=project), 1, "HEAD is detached")


def test_bad_sandbox_conf(project: Path) -> None:
    (project / "sandbox.conf").write_text("AGENT=claude\nthis line is wrong\n")
    assert_clear_error(airlock("status", cwd=project), 1, f"{project / 'sandbox.conf'}:2: expected KEY=VALUE")


def test_rm_without_terminal_or_yes_removes_nothing(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    assert airlock("--name", "keep", "up", cwd=project).returncode == 0
    result = airlock("--name", "keep", "rm", "--no-fetch", cwd=project)
    assert_clear_error(result, 1, "nothing was removed")
    assert "keep" in hermetic.sbx_state_json()["sandboxes"]


def test_rm_stops_when_the_fetch_fails_unless_forced(project: Path, hermetic: Env) -> None:
    corrupt = """\
bad=$(printf 'tree %s\\n\\nbroken\\n' "$(git rev-parse HEAD^{tree})" | git hash-object -t commit --literally -w --stdin)
git update-ref refs/heads/broken "$bad"
"""
    write_agent(hermetic, corrupt)
    assert airlock("--name", "rf", "up", cwd=project).returncode == 0
    refused = airlock("--name", "rf", "rm", "--yes", cwd=project)
    assert_clear_error(refused, 1, "nothing was removed because the fetch failed")
    assert "rf" in hermetic.sbx_state_json()["sandboxes"]
    forced = airlock("--name", "rf", "rm", "--yes", "--force", cwd=project)
    assert forced.returncode == 0, forced.stderr
    assert "rf" not in hermetic.sbx_state_json()["sandboxes"]


def test_rm_fetches_from_a_stopped_sandbox_first(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "echo new > new.txt && git add new.txt && git commit -q -m 'late work'\n")
    assert airlock("--name", "late", "up", cwd=project).returncode == 0
    assert airlock("--name", "late", "stop", cwd=project).returncode == 0
    removed = airlock("--name", "late", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert git(project, "log", "-1", "--format=%s", "refs/sandboxes/late/main").strip() == "late work"


def test_ctrl_c_exits_130_without_traceback(project: Path, hermetic: Env) -> None:
    fifo = hermetic.tmp / "ready"
    os.mkfifo(fifo)
    write_agent(hermetic, f"echo ready > {fifo}\nexec sleep 60\n")
    # git-airlock itself (through `git airlock` the git wrapper dies of the same SIGINT, which a
    # shell reports as 130 too)
    proc = subprocess.Popen(
        ["git-airlock", "--name", "int", "up"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    with open(fifo) as ready:  # blocks until the agent is running
        assert ready.read().strip() == "ready"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert "interrupted" in err


def test_an_unexpected_failure_exits_3_and_debug_shows_its_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug is told apart from a problem the user can fix (exit 1): exit 3, and --debug re-raises it."""
    from git_airlock import cli
    from git_airlock.commands import status

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(status.status_command, "callback", broken)
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as ended:
        cli.main(["status"])
    assert ended.value.code == 3
    err = capsys.readouterr().err
    assert "error: internal error: ZeroDivisionError: a bug" in err and "hint: rerun with --debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "status"])
