"""The pre-push hook with real `git push` to a real bare remote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import COMMIT_AGENT, Env, airlock, git, write_agent

HOOKS_SCRIPT = Path(__file__).parents[1] / "hooks" / "pre-push"


def push(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )


@pytest.fixture
def remote(project: Path, hermetic: Env) -> Path:
    origin = hermetic.tmp / "origin.git"
    git(hermetic.tmp, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    return origin


@pytest.fixture
def fetched(project: Path, remote: Path, hermetic: Env) -> str:
    """A sandbox whose one commit was fetched but not reviewed; returns that commit."""
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    assert airlock("--name", "box", "fetch", cwd=project).returncode == 0
    assert airlock("hooks", "install", cwd=project).returncode == 0
    return git(project, "rev-parse", "refs/remotes/sandbox-box/main").strip()


def remote_ref(origin: Path, ref: str) -> str:
    return git(origin, "rev-parse", "-q", "--verify", ref, check=False).strip()


def test_shim_file_is_the_installed_script(project: Path) -> None:
    from git_airlock.review.hookinstall import SCRIPT

    assert HOOKS_SCRIPT.read_text() == SCRIPT
    assert os.access(HOOKS_SCRIPT, os.X_OK)


def test_fast_forward_push_of_unreviewed_commit_warns(project: Path, remote: Path, fetched: str) -> None:
    git(project, "merge", "-q", "--ff-only", "sandbox-box/main")
    result = push(project, "origin", "main")
    assert result.returncode == 0, result.stderr
    assert (
        "git-airlock: 1 unreviewed sandbox commit(s) in this push of refs/heads/main -> refs/heads/main"
        in result.stderr
    )
    assert f"{fetched[:10]} agent: update app  (agent claude, sandbox box)" in result.stderr
    assert "hint: review them first: `git airlock review`" in result.stderr
    assert remote_ref(remote, "main") == fetched


def test_new_branch_push_is_checked_against_what_the_remote_has(project: Path, remote: Path, fetched: str) -> None:
    git(project, "switch", "-q", "-c", "topic", "sandbox-box/main")
    result = push(project, "origin", "topic")
    assert result.returncode == 0
    assert "1 unreviewed sandbox commit(s) in this push of refs/heads/topic" in result.stderr


def test_block_mode_refuses_and_leaves_the_remote(project: Path, remote: Path, fetched: str) -> None:
    git(project, "config", "airlock.prePush", "block")
    before = remote_ref(remote, "main")
    git(project, "merge", "-q", "--ff-only", "sandbox-box/main")
    result = push(project, "origin", "main")
    assert result.returncode != 0
    assert "push refused (airlock.prePush=block)" in result.stderr
    assert remote_ref(remote, "main") == before


def test_force_push_of_rebased_sandbox_commit_is_caught_by_patch_id(project: Path, remote: Path, fetched: str) -> None:
    (project / "README.md").write_text("host work\n")
    git(project, "commit", "-q", "-am", "host work")
    git(project, "push", "-q", "--no-verify", "origin", "main")
    git(project, "cherry-pick", fetched)
    git(project, "commit", "-q", "--amend", "-m", "laundered: looks like my own work")
    rebased = git(project, "rev-parse", "HEAD").strip()
    assert rebased != fetched
    result = push(project, "--force", "origin", "main")
    assert result.returncode == 0
    assert f"{rebased[:10]} laundered: looks like my own work  (agent claude, sandbox box)" in result.stderr


def test_reviewed_work_pushes_silently(project: Path, remote: Path, fetched: str) -> None:
    assert airlock("--name", "box", "approve", cwd=project).returncode == 0
    git(project, "merge", "-q", "--ff-only", "sandbox-box/main")
    result = push(project, "origin", "main")
    assert result.returncode == 0
    assert "git-airlock" not in result.stderr
    assert remote_ref(remote, "main") == fetched


def test_deletion_and_own_work_are_silent(project: Path, remote: Path, fetched: str) -> None:
    git(project, "push", "-q", "--no-verify", "origin", "sandbox-box/main:refs/heads/old")
    deleted = push(project, "origin", ":old")
    assert deleted.returncode == 0
    assert "git-airlock" not in deleted.stderr
    (project / "mine.txt").write_text("mine\n")
    git(project, "add", "mine.txt")
    git(project, "commit", "-q", "-m", "my own work")
    own = push(project, "origin", "main")
    assert own.returncode == 0
    assert "git-airlock" not in own.stderr


def test_skip_variable_and_no_verify(project: Path, remote: Path, fetched: str) -> None:
    git(project, "config", "airlock.prePush", "block")
    git(project, "merge", "-q", "--ff-only", "sandbox-box/main")
    skipped = push(project, "origin", "main", env={"GIT_AIRLOCK_SKIP": "1"})
    assert skipped.returncode == 0
    assert "git-airlock" not in skipped.stderr
    git(project, "push", "-q", "--no-verify", "origin", f"{fetched}~1:refs/heads/main", "--force")
    assert push(project, "--no-verify", "origin", "main").returncode == 0
    assert remote_ref(remote, "main") == fetched


def test_host_code_changes_are_singled_out(project: Path, remote: Path, hermetic: Env) -> None:
    marker = hermetic.tmp / "ran"
    write_agent(
        hermetic,
        f"""\
mkdir -p .husky
printf '#!/bin/sh\\ntouch {marker}\\n' > .husky/pre-push
chmod +x .husky/pre-push
printf '*.py filter=evil\\n' > .gitattributes
git add -A
git commit -q -m "add husky hook and attributes"
""",
    )
    git(project, "config", "filter.evil.smudge", f"touch {marker}; cat")
    assert airlock("--name", "hc", "up", cwd=project).returncode == 0
    for args in (("fetch",), ("diff",), ("log",)):
        assert airlock("--name", "hc", *args, cwd=project).returncode == 0
    log = airlock("--name", "hc", "log", cwd=project).stdout
    assert "! .husky/pre-push: git hooks (husky)" in log
    assert "! .gitattributes: git attributes can name filter and diff drivers" in log
    assert airlock("hooks", "install", cwd=project).returncode == 0
    git(project, "switch", "-q", "-c", "hc", "sandbox-hc/main")
    result = push(project, "origin", "hc")
    assert "changes .husky/pre-push: git hooks (husky)" in result.stderr
    assert not marker.exists()


def test_foreign_hook_is_chained_and_restored(project: Path, remote: Path, hermetic: Env) -> None:
    hooks_dir = project / ".git" / "hooks"
    foreign = hooks_dir / "pre-push"
    seen = hermetic.tmp / "foreign-stdin"
    foreign.write_text(f'#!/bin/sh\necho "$1 $2" > {seen}.args\ncat > {seen}\nexit 1\n')
    foreign.chmod(0o755)
    original = foreign.read_text()
    installed = airlock("hooks", "install", cwd=project)
    assert installed.returncode == 0
    assert "kept as pre-push.legacy" in installed.stdout
    assert airlock("hooks", "install", cwd=project).stdout.startswith("already installed")
    (project / "new.txt").write_text("x\n")
    git(project, "add", "new.txt")
    git(project, "commit", "-q", "-m", "new")
    result = push(project, "origin", "main")
    assert result.returncode != 0, "the foreign hook fails, so the push must be refused"
    head = git(project, "rev-parse", "HEAD").strip()
    assert seen.read_text().startswith(f"refs/heads/main {head} refs/heads/main ")
    assert (Path(f"{seen}.args")).read_text().split()[0] == "origin"
    status = airlock("hooks", "status", cwd=project).stdout
    assert "installed:" in status and "chains: pre-push.legacy" in status
    removed = airlock("hooks", "uninstall", cwd=project)
    assert "restored your previous pre-push hook" in removed.stdout
    assert foreign.read_text() == original
    assert not (hooks_dir / "pre-push.legacy").exists()


def test_worktrees_share_the_hook(project: Path, remote: Path, fetched: str, hermetic: Env) -> None:
    tree = hermetic.tmp / "wt"
    git(project, "worktree", "add", "-q", "-b", "wt-branch", str(tree), "sandbox-box/main")
    assert airlock("hooks", "status", cwd=tree).stdout.startswith(f"installed: {project / '.git' / 'hooks'}")
    result = push(tree, "origin", "wt-branch")
    assert "1 unreviewed sandbox commit(s) in this push of refs/heads/wt-branch" in result.stderr


def test_core_hooks_path_is_respected(project: Path, hermetic: Env) -> None:
    shared = hermetic.tmp / "shared-hooks"
    git(project, "config", "core.hooksPath", str(shared))
    refused = airlock("hooks", "install", cwd=project)
    assert refused.returncode == 1
    assert "core.hooksPath is set" in refused.stderr
    assert "hint: install there with `git airlock hooks install --hooks-path`" in refused.stderr
    assert not (project / ".git" / "hooks" / "pre-push").exists()
    assert airlock("hooks", "install", "--hooks-path", cwd=project).returncode == 0
    assert (shared / "pre-push").exists()


def test_hook_without_git_airlock_warns_and_lets_the_push_through(
    project: Path, remote: Path, fetched: str, hermetic: Env
) -> None:
    git(project, "merge", "-q", "--ff-only", "sandbox-box/main")
    git_dir = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    result = push(project, "origin", "main", env={"PATH": f"/usr/bin:/bin:{git_dir}"})
    assert result.returncode == 0, result.stderr
    assert "git-airlock: not installed any more, so this push was not checked." in result.stderr
    assert remote_ref(remote, "main") == fetched


def test_ledger_survives_prune_remote_removal_and_sandbox_refs(project: Path, remote: Path, fetched: str) -> None:
    assert airlock("--name", "box", "approve", cwd=project).returncode == 0
    ledger_refs = git(project, "for-each-ref", "refs/airlock/")
    assert "refs/airlock/reviewed/box/main" in ledger_refs and "refs/airlock/base/box" in ledger_refs
    git(project, "fetch", "-q", "--prune", "origin")
    git(project, "fetch", "-q", "--prune", "sandbox-box")
    assert git(project, "for-each-ref", "refs/airlock/") == ledger_refs
    git(project, "remote", "remove", "sandbox-box")
    assert git(project, "for-each-ref", "refs/airlock/") == ledger_refs


def test_force_push_over_a_remote_tip_never_fetched(project: Path, remote: Path, fetched: str, hermetic: Env) -> None:
    git(project, "config", "airlock.prePush", "block")
    other = hermetic.tmp / "other"
    git(hermetic.tmp, "clone", "-q", str(remote), str(other))
    (other / "theirs.txt").write_text("theirs\n")
    git(other, "add", "theirs.txt")
    git(other, "commit", "-q", "-m", "theirs")
    git(other, "push", "-q", "origin", "main")
    (project / "mine.txt").write_text("mine\n")
    git(project, "add", "mine.txt")
    git(project, "commit", "-q", "-m", "mine")
    result = push(project, "--force", "origin", "main")
    assert result.returncode == 0, result.stderr
    assert "git-airlock" not in result.stderr
    assert remote_ref(remote, "main") == git(project, "rev-parse", "HEAD").strip()


def test_push_to_a_url_is_checked_too(project: Path, remote: Path, fetched: str) -> None:
    git(project, "switch", "-q", "-c", "by-url", "sandbox-box/main")
    result = push(project, str(remote), "by-url")
    assert "1 unreviewed sandbox commit(s) in this push of refs/heads/by-url" in result.stderr
