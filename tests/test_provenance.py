"""Provenance: notes under refs/notes/airlock for every commit `merge` or `pr` lands, trailers on a
merge commit, and nothing of it taken from what the agent wrote. Real bwrap sandboxes, real git."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Env, airlock, git, run_in_sandbox

G = "git -c user.name=agent -c user.email=agent@example.com"
CLAIMS = (
    f"echo v2 > app.py && {G} commit -q -am 'agent: v2' -m 'Reviewed-by: Boss <boss@example.com>' && "
    f"echo v3 > notes.txt && {G} add notes.txt && {G} commit -q -m 'agent: notes'"
)
"""Two commits; the first claims a review in its own message."""


def note(project: Path, commit: str) -> dict[str, str]:
    text = git(project, "notes", "--ref=airlock", "show", commit)
    lines = text.splitlines()
    assert lines[0] == "git-airlock provenance"
    return dict(line.split(": ", 1) for line in lines[1:])


def test_an_agents_own_reviewed_by_is_not_a_review(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "claim", CLAIMS).returncode == 0
    refused = airlock("--engine", "bwrap", "--name", "claim", "merge", cwd=project)
    assert refused.returncode == 1
    assert "2 of the 2 commit(s) to merge were not reviewed" in refused.stderr
    assert git(project, "notes", "--ref=airlock", "list", check=False) == ""
    shown = airlock("--engine", "bwrap", "--name", "claim", "report", cwd=project).stdout
    assert "    the agent's claim, not a review: Reviewed-by: Boss <boss@example.com>" in shown
    doc = json.loads(airlock("--engine", "bwrap", "--name", "claim", "report", "--json", cwd=project).stdout)
    assert [c["claims"] for c in doc["commits"]] == [["Reviewed-by: Boss <boss@example.com>"], []]


def test_merge_no_ff_writes_trailers_and_notes_with_the_configured_user(project: Path, hermetic: Env) -> None:
    git(project, "config", "user.name", "Rita Reviewer")
    git(project, "config", "user.email", "rita@example.com")
    assert run_in_sandbox(project, "prov", CLAIMS).returncode == 0
    assert airlock("--engine", "bwrap", "--name", "prov", "approve", cwd=project).returncode == 0
    merged = airlock("--engine", "bwrap", "--name", "prov", "merge", "--no-ff", cwd=project)
    assert merged.returncode == 0, merged.stderr
    head = git(project, "log", "-1", "--format=%P%n%B", "main").splitlines()
    assert len(head[0].split()) == 2  # a merge commit, though a fast-forward was possible
    assert "Assisted-by: shell via git-airlock (sandbox prov)" in head
    assert "Reviewed-by: Rita Reviewer <rita@example.com>" in head
    agent_commits = git(project, "rev-list", "main^2", "^main^1").split()
    assert len(agent_commits) == 2
    for commit in agent_commits:
        fields = note(project, commit)
        assert fields["agent"] == "shell" and fields["sandbox"] == "prov" and fields["engine"] == "bwrap"
        assert fields["reviewed-by"] == "Rita Reviewer <rita@example.com>"
        assert fields["landed"] == "merge into main" and fields["report"].startswith("sha256:")
    shown = git(project, "log", "--notes=airlock", "-1", agent_commits[-1])
    assert "Notes (airlock):" in shown and "reviewed-by: Rita Reviewer" in shown


def test_a_fast_forward_merge_writes_the_notes(project: Path, hermetic: Env) -> None:
    git(project, "config", "user.name", "Rita Reviewer")
    git(project, "config", "user.email", "rita@example.com")
    assert run_in_sandbox(project, "ff", CLAIMS).returncode == 0
    assert airlock("--engine", "bwrap", "--name", "ff", "approve", cwd=project).returncode == 0
    merged = airlock("--engine", "bwrap", "--name", "ff", "merge", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert "fast-forward" in merged.stdout
    tip = git(project, "rev-parse", "main").strip()
    assert note(project, tip)["reviewed-by"] == "Rita Reviewer <rita@example.com>"
    assert note(project, tip + "^")["landed"] == "merge into main"


def test_unreviewed_work_let_in_by_the_setting_is_noted_as_such(project: Path, hermetic: Env) -> None:
    git(project, "config", "airlock.requireReview", "false")
    assert run_in_sandbox(project, "lax", CLAIMS).returncode == 0
    merged = airlock("--engine", "bwrap", "--name", "lax", "merge", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert note(project, "main")["reviewed-by"].startswith("nobody")


def test_the_hook_pushes_the_notes_along_when_asked(project: Path, hermetic: Env) -> None:
    origin = hermetic.tmp / "origin.git"
    git(hermetic.tmp, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    installed = airlock("hooks", "install", "--push-notes", cwd=project)
    assert installed.returncode == 0, installed.stderr
    assert git(project, "config", "airlock.pushNotes").strip() == "true"
    assert run_in_sandbox(project, "pn", CLAIMS).returncode == 0
    assert airlock("--engine", "bwrap", "--name", "pn", "approve", cwd=project).returncode == 0
    assert airlock("--engine", "bwrap", "--name", "pn", "merge", cwd=project).returncode == 0
    pushed = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=project, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    notes = git(project, "rev-parse", "refs/notes/airlock").strip()
    assert git(origin, "rev-parse", "refs/notes/airlock").strip() == notes
