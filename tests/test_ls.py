"""`ls` and the conflict forecast: three real bwrap sandboxes whose agents edit overlapping and
disjoint files; the forecast must say exactly what a real merge does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import Env, airlock, git, run_in_sandbox

G = "git -c user.name=agent -c user.email=agent@example.com"
AGENTS = {
    "a": f"echo 'print(\"from a\")' > app.py && {G} commit -q -am 'a: app'",
    "b": f"echo 'print(\"from b\")' > app.py && {G} commit -q -am 'b: app'",
    "c": f"echo c > c.txt && {G} add c.txt && {G} commit -q -m 'c: new file'",
}


def three_sandboxes(project: Path) -> None:
    for name, script in AGENTS.items():
        assert run_in_sandbox(project, name, script).returncode == 0
        assert airlock("--engine", "bwrap", "--name", name, "fetch", cwd=project).returncode == 0


def real_merge_conflicts(project: Path, where: Path, ours: str, theirs: str) -> list[str]:
    """What `git merge` itself says, in a throwaway clone under ``where``."""
    scratch = where / f"scratch-{ours.replace('/', '_')}-{theirs.replace('/', '_')}"
    git(where, "clone", "-q", "--shared", "--no-checkout", str(project), str(scratch))
    git(scratch, "fetch", "-q", str(project), "+refs/remotes/*:refs/remotes/x/*")
    git(scratch, "checkout", "-q", "--detach", ours.replace("sandbox-", "x/sandbox-"))
    merged = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "merge", "-q", theirs.replace("sandbox-", "x/sandbox-")],
        cwd=scratch,
        capture_output=True,
        text=True,
    )
    if merged.returncode == 0:
        return []
    return git(scratch, "diff", "--name-only", "--diff-filter=U").split()


def test_ls_json_reports_each_sandbox_and_the_forecast_matches_real_merges(project: Path, hermetic: Env) -> None:
    three_sandboxes(project)
    before = (git(project, "status", "--porcelain"), git(project, "rev-parse", "HEAD"), git(project, "stash", "list"))
    listed = airlock("--engine", "bwrap", "ls", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert sorted(rows) == ["a", "b", "c"]
    for name, row in rows.items():
        assert (row["engine"], row["agent"], row["state"], row["leftover"]) == ("bwrap", "shell", "stopped", False)
        assert (row["branch"], row["ahead"], row["unreviewed"], row["policy"]) == ("main", 1, 1, "balanced")
        assert row["tip"] == git(project, "rev-parse", f"refs/remotes/sandbox-{name}/main").strip()
        assert row["last_commit"] == int(git(project, "log", "-1", "--format=%ct", row["tip"]))
    assert rows["a"]["conflicts"] == {"current": [], "b": ["app.py"], "c": []}
    assert rows["b"]["conflicts"] == {"current": [], "a": ["app.py"], "c": []}
    assert rows["c"]["conflicts"] == {"current": [], "a": [], "b": []}
    for ours, theirs in (("sandbox-a/main", "sandbox-b/main"), ("sandbox-a/main", "sandbox-c/main")):
        expected = rows[ours.split("/")[0][len("sandbox-") :]]["conflicts"][theirs.split("/")[0][len("sandbox-") :]]
        assert real_merge_conflicts(project, hermetic.tmp, ours, theirs) == expected
    after = (git(project, "status", "--porcelain"), git(project, "rev-parse", "HEAD"), git(project, "stash", "list"))
    assert after == before  # the forecast touched nothing


def test_ls_text_shows_the_matrix_and_left_over_refs(project: Path, hermetic: Env) -> None:
    three_sandboxes(project)
    assert airlock("--engine", "bwrap", "--name", "c", "rm", "--yes", cwd=project).returncode == 0
    shown = airlock("--engine", "bwrap", "ls", cwd=project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == [
        *("sandbox", "engine", "agent", "state", "tmux", "branch", "ahead", "unreviewed", "last", "commit", "policy"),
        "layer",
    ]
    assert lines[3].split()[:5] == ["c", "bwrap", "shell", "gone", "(refs"]
    matrix = lines[lines.index("") + 1 :]
    assert matrix[0].split() == ["merges", "current", "a", "b", "c"]
    assert matrix[1].split() == ["a", ".", "-", "X", "."]
    assert matrix[2].split() == ["b", ".", "X", "-", "."]
    assert "a x b: app.py" in matrix


def test_merge_warns_which_sandbox_it_will_make_conflict(project: Path, hermetic: Env) -> None:
    three_sandboxes(project)
    assert airlock("--engine", "bwrap", "--name", "a", "approve", cwd=project).returncode == 0
    merged = airlock("--engine", "bwrap", "--name", "a", "merge", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert "warning: merging a now makes b conflict in app.py" in merged.stderr
    assert "makes c conflict" not in merged.stderr
    after = json.loads(airlock("--engine", "bwrap", "ls", "--json", cwd=project).stdout)
    assert {row["name"]: row["conflicts"]["current"] for row in after} == {"a": [], "b": ["app.py"], "c": []}


def test_doctor_says_when_git_is_too_old_to_forecast(project: Path, hermetic: Env) -> None:
    import os
    import shutil

    shims = hermetic.tmp / "old-git"
    shims.mkdir()
    real = shutil.which("git")
    shim = shims / "git"
    shim.write_text(f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "git version 2.30.1"; exit 0; }}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    hermetic.mp.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    # straight to the console script: `git airlock` would put git's own exec-path (and its git) first
    shown = subprocess.run(["git-airlock", "--engine", "bwrap", "doctor"], cwd=project, capture_output=True, text=True)
    assert "WARN  git              git version 2.30.1: `ls` cannot forecast conflicts before git 2.38" in shown.stdout


def approve(project: Path, *names: str) -> None:
    for name in names:
        assert airlock("--engine", "bwrap", "--name", name, "approve", cwd=project).returncode == 0


def test_merge_all_lands_the_compatible_work_and_stops_at_the_conflict(project: Path, hermetic: Env) -> None:
    three_sandboxes(project)
    approve(project, "a", "b", "c")
    queued = airlock("--engine", "bwrap", "merge", "--all", cwd=project)
    assert queued.returncode == 1
    assert "landed: c, a" in queued.stderr and "not landed: b" in queued.stderr
    assert "error: the merge queue stopped at b: merging into main would conflict" in queued.stderr
    assert git(project, "show", "main:c.txt") == "c\n"
    assert git(project, "show", "main:app.py") == 'print("from a")\n'
    assert git(project, "status", "--porcelain") == ""  # nothing half-done


def test_merge_all_skips_and_lists_unreviewed_sandboxes(project: Path, hermetic: Env) -> None:
    three_sandboxes(project)
    approve(project, "c")
    queued = airlock("--engine", "bwrap", "merge", "--all", cwd=project)
    assert queued.returncode == 0, queued.stderr
    assert "skipped a: 1 unreviewed commit(s)" in queued.stderr and "skipped b: 1 unreviewed" in queued.stderr
    assert "landed: c" in queued.stderr
    assert git(project, "log", "-1", "--format=%s", "main").strip() == "c: new file"


def test_verify_moves_the_branch_only_when_the_command_passes(project: Path, hermetic: Env) -> None:
    three_sandboxes(project)
    approve(project, "a", "c")
    before = git(project, "rev-parse", "main").strip()
    failed = airlock("--engine", "bwrap", "--name", "a", "merge", "--verify", "grep -q nowhere app.py", cwd=project)
    assert failed.returncode == 1
    assert "the verification failed (exit 1) on the merged tree; main was not moved" in failed.stderr
    assert git(project, "rev-parse", "main").strip() == before and git(project, "status", "--porcelain") == ""
    passed = airlock("--engine", "bwrap", "--name", "c", "merge", "--verify", "test -f c.txt", cwd=project)
    assert passed.returncode == 0, passed.stderr
    assert git(project, "show", "main:c.txt") == "c\n"


def test_the_verification_sandbox_has_no_network_and_cannot_write_the_repository(project: Path, hermetic: Env) -> None:
    import socket

    three_sandboxes(project)
    approve(project, "c")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    probe = (
        f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)' 2>/dev/null && exit 11; "
        f"touch {project}/.git/pwned 2>/dev/null && exit 12; "
        f"test -e {project}/.git && exit 13; "
        "test -f c.txt"
    )
    merged = airlock("--engine", "bwrap", "--name", "c", "merge", "--verify", probe, cwd=project)
    try:
        listener.accept()
        reached = True
    except BlockingIOError:
        reached = False
    finally:
        listener.close()
    assert merged.returncode == 0, merged.stderr  # none of the escapes worked: the checks ran and passed
    assert not reached and not (project / ".git" / "pwned").exists()


def test_the_verification_runs_as_no_uid_of_the_host(project: Path, hermetic: Env) -> None:
    """The checks are the agent's code: like its sandbox, they run as uids of their own, never root's."""
    three_sandboxes(project)
    approve(project, "c")
    probe = 'awk \'{print "HOST-UIDS", $2}\' /proc/self/uid_map; test "$(id -u)" = 0'
    merged = airlock("--engine", "bwrap", "--name", "c", "merge", "--verify", probe, cwd=project)
    assert merged.returncode == 0, merged.stderr
    shown = (merged.stdout + merged.stderr).splitlines()
    uids = [int(line.split()[-1]) for line in shown if line.strip().startswith("HOST-UIDS ")]
    assert uids and 0 not in uids and (os.getuid() == 0) == (os.getuid() not in uids)
