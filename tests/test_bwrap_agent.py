"""A real agent CLI (Claude Code, from npm) starts inside a bubblewrap sandbox.

`--version` needs no model call, yet proves that PATH, HOME and node work in
the sandbox. The package is installed into the sandbox's persistent HOME the
way a user would keep an agent there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import Env, airlock

NPM_CACHE = os.path.join(os.path.expanduser("~"), ".npm")  # read before the hermetic fixture moves HOME


def test_claude_code_runs_in_the_sandbox(project: Path, hermetic: Env) -> None:
    created = airlock("--engine", "bwrap", "--agent", "shell", "--name", "cc", "up", "--", "-c", "true", cwd=project)
    assert created.returncode == 0, created.stderr
    home = hermetic.home / ".local" / "share" / "git-airlock" / "sandboxes" / "cc" / "home"
    install = subprocess.run(
        [
            "npm",
            "install",
            "--global",
            "--prefix",
            str(home / ".npm-global"),
            "--cache",
            NPM_CACHE,
            "--no-audit",
            "--no-fund",
            "@anthropic-ai/claude-code",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr

    started = airlock("--engine", "bwrap", "--agent", "claude", "--name", "cc", "up", "--", "--version", cwd=project)
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
        'command -v claude; echo "HOME=$HOME"; node --version',
        cwd=project,
    )
    assert shell.returncode == 0, shell.stderr
    lines = shell.stdout.splitlines()
    assert lines[0] == "/home/agent/.npm-global/bin/claude"
    assert lines[1] == "HOME=/home/agent"
    assert lines[2].startswith("v")
