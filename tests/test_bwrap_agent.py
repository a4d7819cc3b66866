"""A real agent CLI (Claude Code, from npm) installed once and started inside a bubblewrap sandbox.

`--version` needs no model call, yet proves that PATH, HOME and node work in
the sandbox. The package comes from the npm registry through `git airlock
agents install`: downloaded without running its scripts, which then run in a
sandbox without network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Env, airlock

pytestmark = pytest.mark.npm


def test_claude_code_installed_once_runs_in_every_sandbox(project: Path, hermetic: Env) -> None:
    missing = airlock("--engine", "bwrap", "--agent", "claude", "--name", "cc", "up", "--", "--version", cwd=project)
    assert missing.returncode == 1
    assert "`git airlock agents install claude` installs it once for every sandbox" in missing.stderr

    installed = airlock("--engine", "bwrap", "agents", "install", "claude", cwd=project, timeout=900)
    assert installed.returncode == 0, installed.stderr
    listed = airlock("--engine", "bwrap", "agents", "ls", cwd=project).stdout
    store = hermetic.home / ".local" / "share" / "git-airlock" / "agents" / "npm"
    assert "claude     " in listed and f"for every sandbox ({store / 'bin'})" in listed

    for name in ("cc", "cc2"):  # a second sandbox needs no second install
        args = ("--engine", "bwrap", "--agent", "claude", "--name", name, "up", "--", "--version")
        started = airlock(*args, cwd=project)
        assert started.returncode == 0, started.stderr
        assert "(Claude Code)" in started.stdout

    shell = airlock(
        "--engine",
        "bwrap",
        "--agent",
        "shell",
        "--name",
        "cc",
        "up",
        "--",
        "-c",
        f'command -v claude; echo "HOME=$HOME"; touch {store}/planted 2>/dev/null && echo writable || echo read-only',
        cwd=project,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines() == [str(store / "bin" / "claude"), "HOME=/home/agent", "read-only"]
