"""A real agent CLI (Claude Code, from npm) starts inside a bubblewrap sandbox.

`--version` needs no model call, yet proves that PATH, HOME and node work in
the sandbox. The package is installed into the sandbox's persistent HOME with
the command `up` prints when the agent is missing, from npm, through the gate.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from conftest import Env, airlock


def test_claude_code_runs_in_the_sandbox(project: Path, hermetic: Env) -> None:
    missing = airlock("--engine", "bwrap", "--agent", "claude", "--name", "cc", "up", "--", "--version", cwd=project)
    assert missing.returncode == 1
    hint = missing.stderr.split("install it inside, as the agent: ", 1)[1].strip()
    # the hint's command, run as given: npm runs in the sandbox, as the agent, through the egress gate
    # (a host-side npm would read an npmrc the agent can write in its HOME)
    install = subprocess.run(shlex.split(hint), cwd=project, capture_output=True, text=True, timeout=900)
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
