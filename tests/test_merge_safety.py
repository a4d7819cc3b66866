"""A merge that cannot complete changes nothing: branch, index, working tree, stash."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import COMMIT_AGENT, Env, airlock, git, snapshot, write_agent


@pytest.fixture
def sandboxed(project: Path, hermetic: Env) -> Path:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "m", "up", cwd=project).returncode == 0
    assert airlock("--name", "m", "approve", cwd=project).returncode == 0
    return project


def make_user_state(repo: Path) -> None:
    """Work in progress the user must get back intact: a stash, staged and unstaged edits, untracked files."""
    (repo / "README.md").write_text("stashed edit\n")
    git(repo, "stash", "push", "-q", "-m", "keep me")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "README.md").write_text("unstaged edit\n")


def test_conflict_leaves_everything_as_it_was(sandboxed: Path) -> None:
    (sandboxed / "app.py").write_text("print('host version')\n")
    git(sandboxed, "commit", "-q", "-am", "host edits app.py")
    make_user_state(sandboxed)
    before = snapshot(sandboxed)
    result = airlock("--name", "m", "merge", cwd=sandboxed)
    assert result.returncode == 1
    assert "would conflict in 1 path(s)" in result.stderr
    assert "  app.py" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "hint:" in result.stderr
    assert snapshot(sandboxed) == before
    assert not (sandboxed / ".git" / "MERGE_HEAD").exists()


def test_dirty_file_the_merge_would_overwrite_is_refused(sandboxed: Path) -> None:
    make_user_state(sandboxed)
    (sandboxed / "app.py").write_text("print('my uncommitted work')\n")
    before = snapshot(sandboxed)
    result = airlock("--name", "m", "merge", cwd=sandboxed)
    assert result.returncode == 1
    assert "uncommitted changes would be overwritten" in result.stderr
    assert "  app.py" in result.stderr
    assert "hint: commit or stash them" in result.stderr
    assert snapshot(sandboxed) == before


def test_fast_forward_keeps_unrelated_work_in_progress(sandboxed: Path) -> None:
    make_user_state(sandboxed)
    result = airlock("--name", "m", "merge", cwd=sandboxed)
    assert result.returncode == 0, result.stderr
    assert (sandboxed / "app.py").read_text() == "print('v2 from agent')\n"
    assert (sandboxed / "README.md").read_text() == "unstaged edit\n"
    assert (sandboxed / "notes.txt").read_text() == "untracked\n"
    assert "A  staged.txt" in git(sandboxed, "status", "--porcelain")
    assert "keep me" in git(sandboxed, "stash", "list")


def test_base_checked_out_in_another_worktree_is_refused(sandboxed: Path, hermetic: Env) -> None:
    git(sandboxed, "switch", "-q", "-c", "elsewhere")
    other = hermetic.tmp / "wt"
    git(sandboxed, "worktree", "add", "-q", str(other), "main")
    before = snapshot(other)
    result = airlock("--name", "m", "merge", "main", cwd=sandboxed)
    assert result.returncode == 1
    assert "checked out in another worktree" in result.stderr
    assert snapshot(other) == before


def test_merge_twice_is_up_to_date(sandboxed: Path) -> None:
    assert airlock("--name", "m", "merge", cwd=sandboxed).returncode == 0
    again = airlock("--name", "m", "merge", cwd=sandboxed)
    assert again.returncode == 0
    assert "already contains" in again.stdout


def test_unknown_base_and_sandbox_branch(sandboxed: Path) -> None:
    before = snapshot(sandboxed)
    bad_base = airlock("--name", "m", "merge", "nope", cwd=sandboxed)
    assert bad_base.returncode == 1
    assert "base branch 'nope' does not exist" in bad_base.stderr
    assert "hint:" in bad_base.stderr
    bad_branch = airlock("--name", "m", "merge", "--sandbox-branch", "nope", cwd=sandboxed)
    assert bad_branch.returncode == 1
    assert "the sandbox has no branch 'nope' (it has: main)" in bad_branch.stderr
    assert "hint: pick one with --sandbox-branch" in bad_branch.stderr
    assert snapshot(sandboxed) == before
