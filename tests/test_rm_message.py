"""`rm` says where the sandbox's commits can still be found only when something was fetched."""

from __future__ import annotations

from pathlib import Path

from conftest import COMMIT_AGENT, Env, airlock, write_agent


def test_rm_no_fetch_claims_nothing_when_nothing_was_fetched(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    result = airlock("--name", "box", "rm", "--no-fetch", "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "removed box; nothing was fetched from it" in result.stderr
    assert "stay reachable" not in result.stderr


def test_rm_no_fetch_after_an_earlier_fetch(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    assert airlock("--name", "box", "fetch", cwd=project).returncode == 0
    result = airlock("--name", "box", "rm", "--no-fetch", "--yes", cwd=project)
    assert "commits fetched before stay reachable at refs/sandboxes/box/*; nothing was fetched this time" in (
        result.stderr
    )


def test_rm_with_fetch_says_where_the_commits_are(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    result = airlock("--name", "box", "rm", "--fetch", "--yes", cwd=project)
    assert "removed box; fetched commits stay reachable at refs/sandboxes/box/*" in result.stderr
