"""The whole workflow end to end, through `git airlock`, against the sbx emulator."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from conftest import COMMIT_AGENT, Env, airlock, git, write_agent


def sandbox_name(project: Path) -> str:
    out = airlock("config", "--json", cwd=project).stdout
    import json

    return next(row["value"] for row in json.loads(out) if row["env"] == "(derived)")


def test_up_fetch_diff_review_merge_rm(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    up = airlock("up", "--", "--model", "opus", cwd=project)
    assert up.returncode == 0, up.stderr
    name = sandbox_name(project)
    args = (hermetic.tmp / "agent-args.txt").read_text().split("\n")
    assert args[:2] == ["--model", "opus"]
    assert "no AGENTS.md" in up.stderr and "auth:" in up.stderr
    assert ["policy", "init", "balanced"] in hermetic.sbx_calls()
    assert ["run", "--clone", "--name", name, "claude", str(project), "--", "--model", "opus"] in hermetic.sbx_calls()
    # the host is untouched by the agent's work
    assert (project / "app.py").read_text() == "print('v1')\n"

    status = airlock("status", cwd=project)
    assert status.returncode == 0
    assert f"sandbox:  {name} (running" in status.stdout
    assert f"sandbox-{name} -> git://127.0.0.1:" in status.stdout

    fetched = airlock("fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    tip = git(project, "rev-parse", f"refs/remotes/sandbox-{name}/main").strip()
    assert git(project, "log", "-1", "--format=%s", tip).strip() == "agent: update app"
    assert git(project, "rev-parse", f"refs/sandboxes/{name}/main").strip() == tip
    assert "1 commit(s) not in main" in airlock("status", cwd=project).stdout

    diff = airlock("diff", cwd=project)
    assert diff.returncode == 0
    assert "-print('v1')" in diff.stdout and "+print('v2 from agent')" in diff.stdout
    stat_out = airlock("diff", "--stat", cwd=project).stdout
    assert "app.py" in stat_out and "1 file changed" in stat_out

    # a scripted difftool records what it was shown; review must not touch the working tree
    seen = hermetic.tmp / "seen"
    tool = hermetic.tmp / "difftool.sh"
    tool.write_text(f'#!/bin/sh\ncat "$2/app.py" > {seen}\nls "$1" > {seen}.left\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    git(project, "config", "difftool.scripted.cmd", f'{tool} "$LOCAL" "$REMOTE"')
    before = git(project, "status", "--porcelain")
    review = airlock("review", "--mark", cwd=project, env={"REVIEW_TOOL": "scripted"})
    assert review.returncode == 0, review.stderr
    assert seen.read_text() == "print('v2 from agent')\n"
    assert git(project, "status", "--porcelain") == before

    merge = airlock("merge", cwd=project)
    assert merge.returncode == 0, merge.stderr
    assert "fast-forward" in merge.stdout
    assert git(project, "rev-parse", "main").strip() == tip
    assert (project / "app.py").read_text() == "print('v2 from agent')\n"
    assert git(project, "status", "--porcelain") == ""

    removed = airlock("rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert name not in hermetic.sbx_state_json().get("sandboxes", {})
    assert git(project, "config", "--get", f"remote.sandbox-{name}.url", check=False) == ""
    # sbx keeps refs/sandboxes/<name>/* so work stays recoverable
    assert git(project, "rev-parse", f"refs/sandboxes/{name}/main").strip() == tip


def test_fetch_starts_a_stopped_sandbox(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("up", cwd=project).returncode == 0
    name = sandbox_name(project)
    url_before = git(project, "config", f"remote.sandbox-{name}.url")
    assert airlock("stop", cwd=project).returncode == 0
    assert "exists but stopped" in airlock("status", cwd=project).stdout
    fetched = airlock("fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    assert ["exec", name, "true"] in hermetic.sbx_calls()
    # the port moved at restart, and sbx (not git-airlock) rewrote the URL
    assert git(project, "config", f"remote.sandbox-{name}.url") != url_before
    assert git(project, "rev-parse", "--verify", f"refs/remotes/sandbox-{name}/main").strip()


def test_up_refuses_an_existing_sandbox(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    assert airlock("up", cwd=project).returncode == 0
    again = airlock("up", cwd=project)
    assert again.returncode == 1
    assert "already exists (running)" in again.stderr
    assert "hint: `git airlock attach`" in again.stderr


def test_run_passes_the_headless_form(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    result = airlock("run", "fix the bug", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (hermetic.tmp / "agent-args.txt").read_text() == "--dangerously-skip-permissions\n-p\nfix the bug\n"
    assert "git airlock review" in result.stderr


@pytest.mark.parametrize(
    ("agent", "args"),
    [
        ("codex", ["exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]),
        ("gemini", ["--approval-mode", "yolo", "--skip-trust", "-p"]),
        ("opencode", ["run"]),
        ("copilot", ["--allow-all", "--no-ask-user", "--disable-client-telemetry", "-p"]),
        ("cursor", ["-p", "--force"]),
        ("droid", ["exec", "--auto", "high"]),
        ("kiro", ["chat", "--no-interactive", "--trust-all-tools"]),
    ],
)
def test_run_gives_each_agent_its_headless_form(project: Path, hermetic: Env, agent: str, args: list[str]) -> None:
    write_agent(hermetic, 'printf "%s\\n" "$@" > "$AGENT_LOG"\n')
    assert airlock("--agent", agent, "--name", agent, "run", "do it", cwd=project).returncode == 0
    assert (hermetic.tmp / "agent-args.txt").read_text().splitlines() == [*args, "do it"]


def test_two_sandboxes_per_repo(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "one", "up", cwd=project).returncode == 0
    assert airlock("--name", "two", "up", cwd=project).returncode == 0
    assert airlock("--name", "one", "fetch", cwd=project).returncode == 0
    assert git(project, "rev-parse", "--verify", "refs/remotes/sandbox-one/main")
    assert git(project, "rev-parse", "--verify", "refs/remotes/sandbox-two/main", check=False) == ""


def test_merge_into_branch_not_checked_out(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("up", cwd=project).returncode == 0
    git(project, "switch", "-q", "-c", "other")
    (project / "scratch.txt").write_text("mine\n")
    merged = airlock("merge", "--yes", "main", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert "working tree untouched" in merged.stdout
    assert git(project, "log", "-1", "--format=%s", "main").strip() == "agent: update app"
    assert git(project, "branch", "--show-current").strip() == "other"
    assert (project / "app.py").read_text() == "print('v1')\n"
    assert (project / "scratch.txt").read_text() == "mine\n"


def test_merge_creates_a_merge_commit_when_base_moved(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("up", cwd=project).returncode == 0
    (project / "README.md").write_text("hello from host\n")
    git(project, "commit", "-q", "-am", "host work")
    diff = airlock("diff", cwd=project).stdout
    assert "README.md" not in diff, "work done on the base meanwhile must not show as reverted"
    merged = airlock("merge", "--yes", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert "merge" in merged.stdout
    parents = git(project, "log", "-1", "--format=%P").split()
    assert len(parents) == 2
    assert (project / "README.md").read_text() == "hello from host\n"
    assert (project / "app.py").read_text() == "print('v2 from agent')\n"
    assert git(project, "status", "--porcelain") == ""


def test_pr_pushes_a_branch_and_prints_compare_hint(project: Path, hermetic: Env) -> None:
    origin = hermetic.tmp / "origin.git"
    git(hermetic.tmp, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("--name", "feat", "up", cwd=project).returncode == 0
    pr = airlock("--name", "feat", "pr", "--yes", cwd=project)
    assert pr.returncode == 0, pr.stderr
    pushed = git(origin, "rev-parse", "refs/heads/airlock/feat").strip()
    assert pushed == git(project, "rev-parse", "refs/remotes/sandbox-feat/main").strip()
    assert "open a pull request" in pr.stdout
    assert git(project, "rev-parse", "main").strip() != pushed, "pr never touches the base branch"


def test_up_starts_a_stopped_sandbox_again(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, 'printf "%s\\n" "$@" > "$AGENT_LOG"\n')
    assert airlock("--name", "again", "up", cwd=project).returncode == 0
    assert airlock("--name", "again", "stop", cwd=project).returncode == 0
    restarted = airlock("--name", "again", "up", "--", "--resume", cwd=project)
    assert restarted.returncode == 0, restarted.stderr
    assert "exists and is stopped: starting it again" in restarted.stderr
    assert ["run", "again", "--", "--resume"] in hermetic.sbx_calls()
    assert (hermetic.tmp / "agent-args.txt").read_text() == "--resume\n"
