"""The commands that run most often import only what they need.

The pre-push hook runs on every push, `-h` and `status` whenever someone looks: each pays for every
module it imports. So the hook imports neither click nor pygit2, and `-h` and `status` not pygit2
(click they need). Measured by what the real entry point has imported when the process ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Env, git

PROBE = """\
import atexit, os, sys
atexit.register(lambda: open(os.environ["MODULES_RECORD"], "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "git-airlock"
from git_airlock.entry import main
main()
"""


def imported(cwd: Path, tmp: Path, *args: str, stdin: str = "") -> set[str]:
    """The modules `git-airlock ARGS` had imported when it ended."""
    record = tmp / "modules.txt"
    env = {**os.environ, "MODULES_RECORD": str(record)}
    subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
    return set(record.read_text().split())


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_the_pre_push_hook_imports_neither_click_nor_pygit2(project: Path, hermetic: Env) -> None:
    head = git(project, "rev-parse", "HEAD").strip()
    push = f"refs/heads/main {head} refs/heads/main {'0' * 40}\n"
    modules = imported(project, hermetic.tmp, "hook-impl", "pre-push", "origin", "file:///nowhere", stdin=push)
    assert "git_airlock.review.prepush" in modules  # the probe saw the hook run
    assert {"click", "pygit2"} & top_level(modules) == set()


@pytest.mark.parametrize(
    "args", [("-h",), ("--engine", "bwrap", "status"), ("--engine", "bwrap", "ls")], ids=["help", "status", "ls"]
)
def test_help_status_and_ls_do_not_import_pygit2(project: Path, hermetic: Env, args: tuple[str, ...]) -> None:
    modules = imported(project, hermetic.tmp, *args)
    assert "git_airlock.cli" in modules
    assert "pygit2" not in top_level(modules)
