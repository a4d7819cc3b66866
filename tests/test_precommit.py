"""The pre-commit framework installs and runs our ``.pre-commit-hooks.yaml`` hook.

A copy of this project's packaging files becomes a hook repository (a local
path, pinned by commit); a user project lists it in ``.pre-commit-config.yaml``
and installs it at the pre-push stage. pre-commit then builds a virtualenv and
pip-installs git-airlock into it from PyPI (network needed), so the whole
story is one test to pay that install once.

Sandbox refs are made with plain git plumbing, no sbx emulator: what the hook
reads is only refs (``refs/remotes/sandbox-<name>/*``, ``refs/airlock/*``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Env, git

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ("pyproject.toml", "README.md", "LICENSE", "man", "git_airlock", "hooks", ".pre-commit-hooks.yaml")
# captured at import, before the hermetic fixture moves HOME: pip's cache is the one thing shared with the user
PIP_CACHE_DIR = os.environ.get("PIP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "pip")
MESSAGE = "unreviewed sandbox commit(s) in this push"  # not the hook's name, which pre-commit prints


def make_hook_repo(path: Path) -> str:
    """A git repository holding this project's packaging files; its commit id."""
    path.mkdir()
    for name in PACKAGING:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, path / name)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "git-airlock under test")
    return git(path, "rev-parse", "HEAD").strip()


def commit(repo: Path, path: str, text: str, message: str) -> str:
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def pre_commit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"pre-commit {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def push(repo: Path, remote: str = "origin") -> tuple[int, str]:
    """``git push REMOTE main`` through the installed hook: exit status, and stdout + stderr together.

    Where the hook's own stdout lands (git's stdout or stderr) depends on the git version.
    """
    proc = subprocess.run(
        ["git", "push", remote, "main"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout


def remote_main(remote: Path) -> str:
    return git(remote, "rev-parse", "refs/heads/main").strip()


def test_pre_commit_framework_runs_the_hook_at_pre_push(hermetic: Env) -> None:
    hermetic.mp.setenv("PRE_COMMIT_HOME", str(hermetic.tmp / "pre-commit-home"))
    hermetic.mp.setenv("PIP_CACHE_DIR", PIP_CACHE_DIR)
    hermetic.mp.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    hook_rev = make_hook_repo(hermetic.tmp / "hook-repo")

    remote = hermetic.tmp / "remote.git"
    git(hermetic.tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    user = hermetic.tmp / "user"
    user.mkdir()
    git(user, "init", "-q", "-b", "main")
    config = {
        "default_install_hook_types": ["pre-push"],
        "repos": [{"repo": str(hermetic.tmp / "hook-repo"), "rev": hook_rev, "hooks": [{"id": "git-airlock"}]}],
    }
    (user / ".pre-commit-config.yaml").write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    git(user, "add", ".pre-commit-config.yaml")
    start = commit(user, "app.py", "print('v1')\n", "initial")
    git(user, "remote", "add", "origin", str(remote))
    git(user, "push", "-q", "origin", "main")  # before any hook: the remote has main at `start`

    pre_commit("install", cwd=user)  # default_install_hook_types: the pre-push hook
    assert "pre-commit" in (user / ".git" / "hooks" / "pre-push").read_text()
    pre_commit("install-hooks", cwd=user)  # the virtualenv and pip install, once

    # the agent's work, fetched as if from sandbox "box", then merged without review
    git(user, "checkout", "-q", "-b", "agent")
    agent1 = commit(user, "app.py", "print('v2 from agent')\n", "agent: update app")
    git(user, "checkout", "-q", "main")
    git(user, "update-ref", "refs/remotes/sandbox-box/main", agent1)
    git(user, "update-ref", "refs/airlock/base/box", start)
    git(user, "merge", "-q", "--ff-only", "agent")

    # block: refused, the commit named, the remote untouched
    git(user, "config", "airlock.prePush", "block")
    refused_status, refused = push(user)
    assert refused_status != 0, refused
    assert MESSAGE in refused, refused
    assert agent1[:10] in refused, refused
    assert "agent: update app" in refused, refused
    assert remote_main(remote) == start

    # reviewed: the same push goes through, and git-airlock says nothing (even in block mode)
    git(user, "update-ref", "refs/airlock/reviewed/box/main", agent1)
    passed_status, passed = push(user)
    assert passed_status == 0, passed
    assert "Passed" in passed, passed  # pre-commit did run the hook
    assert MESSAGE not in passed, passed
    assert "git-airlock:" not in passed, passed
    assert remote_main(remote) == agent1

    # warn (the default): a new unreviewed commit goes through, but the push output names it
    git(user, "config", "--unset", "airlock.prePush")
    git(user, "checkout", "-q", "agent")
    agent2 = commit(user, "app.py", "print('v3 from agent')\n", "agent: second change")
    git(user, "checkout", "-q", "main")
    git(user, "update-ref", "refs/remotes/sandbox-box/main", agent2)
    git(user, "merge", "-q", "--ff-only", "agent")
    warned_status, warned = push(user)
    assert warned_status == 0, warned
    assert remote_main(remote) == agent2
    assert MESSAGE in warned, warned
    assert agent2[:10] in warned, warned
    assert agent1[:10] not in warned, warned  # reviewed, and already on the remote

    # a first push to an empty remote: pre-commit runs the hook without PRE_COMMIT_FROM_REF/TO_REF
    # (the history has a root commit the remote lacks), and the unreviewed commit must still be caught
    mirror = hermetic.tmp / "mirror.git"
    git(hermetic.tmp, "init", "-q", "--bare", "-b", "main", str(mirror))
    git(user, "remote", "add", "mirror", str(mirror))
    git(user, "config", "airlock.prePush", "block")
    first_status, first = push(user, "mirror")
    assert first_status != 0, first
    assert MESSAGE in first, first
    assert agent2[:10] in first, first
    assert agent1[:10] not in first, first
    assert git(mirror, "for-each-ref") == ""
