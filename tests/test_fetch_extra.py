"""Fetching initialised submodules, `pr` through gh, and the man page behind `git airlock --help`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import Env, airlock, git, write_agent


def test_initialised_submodules_are_fetched(project: Path, hermetic: Env) -> None:
    library = hermetic.tmp / "library"
    git(hermetic.tmp, "init", "-q", str(library))
    (library / "lib.txt").write_text("v1\n")
    git(library, "add", ".")
    git(library, "commit", "-q", "-m", "lib v1")
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    git(project, "commit", "-q", "-m", "add lib")
    write_agent(
        hermetic,
        """\
git -c protocol.file.allow=always submodule update -q --init
cd lib
git switch -q -c main 2>/dev/null || git switch -q main
echo v2 > lib.txt
git commit -q -am "agent: lib v2"
cd ..
git commit -q -am "agent: bump lib"
""",
    )
    assert airlock("--name", "sm", "up", cwd=project).returncode == 0
    sub_gitdir = project / ".git" / "modules" / "lib"
    # code-airlock's FETCH_SUBMODULES=false: the superproject only
    alone = airlock("--name", "sm", "fetch", cwd=project, env={"FETCH_SUBMODULES": "false"})
    assert alone.returncode == 0, alone.stderr
    assert git(project, f"--git-dir={sub_gitdir}", "for-each-ref", "refs/remotes/sandbox-sm/") == ""
    fetched = airlock("--name", "sm", "fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    subject = git(project, f"--git-dir={sub_gitdir}", "log", "-1", "--format=%s", "refs/remotes/sandbox-sm/main")
    assert subject.strip() == "agent: lib v2"


def test_pr_uses_gh_when_present(project: Path, hermetic: Env) -> None:
    origin = hermetic.tmp / "origin.git"
    git(hermetic.tmp, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    bindir = hermetic.tmp / "gh-bin"
    bindir.mkdir()
    gh = bindir / "gh"
    body = hermetic.tmp / "gh-body.md"
    gh.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {hermetic.tmp / "gh-args"}\n'
        f'while [ $# -gt 0 ]; do [ "$1" = --body-file ] && cp "$2" {body}; shift; done\n'
        "echo https://example.test/pr/1\n"
    )
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    hermetic.mp.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    write_agent(hermetic, "echo x > x.txt && git add x.txt && git commit -q -m 'agent: x'\n")
    assert airlock("--name", "g", "up", cwd=project).returncode == 0
    pr = airlock("--name", "g", "pr", "--yes", "main", "topic", cwd=project)
    assert pr.returncode == 0, pr.stderr
    args = (hermetic.tmp / "gh-args").read_text().split("\n")
    assert args[:9] == ["pr", "create", "--base", "main", "--head", "topic", "--title", "agent: x", "--body-file"]
    assert body.read_text().startswith("### Sandbox `g`")  # the report, in Markdown
    assert "| `agent: x` |" in body.read_text()
    assert git(origin, "log", "-1", "--format=%s", "topic").strip() == "agent: x"


def test_help_flag_opens_the_man_page(project: Path, hermetic: Env) -> None:
    """git turns `git airlock --help` into `git help airlock`; the wheel installs the page."""
    assert (Path(sys.prefix) / "share" / "man" / "man1" / "git-airlock.1").exists()
    env = {
        "PATH": os.pathsep.join([os.path.join(sys.prefix, "bin"), os.environ["PATH"]]),
        "MANPAGER": "cat",
        "MANWIDTH": "80",
    }
    result = subprocess.run(
        ["git", "airlock", "--help"], cwd=project, capture_output=True, text=True, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr
    assert "git-airlock - run coding agents in disposable sandboxes" in result.stdout
