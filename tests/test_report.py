"""`report`: a real bwrap sandbox whose agent commits and makes allowed, blocked and failing requests
to loopback servers; the report lists exactly those, with the commits and their host-code lines."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from test_bwrap import FETCH
from test_net_suggest import NAMES, closed_port, web  # noqa: F401 (web is a fixture)
from test_network import sandbox_name

from conftest import COMMIT_AGENT, Env, airlock, git, run_in_sandbox, write_agent

G = "git -c user.name=agent -c user.email=agent@example.com"


def agent_run(project: Path, port: int, down: int) -> None:
    urls = [
        f"http://api.allowed.test:{port}/",
        f"http://down.allowed.test:{down}/",
        f"http://cdn.blocked.test:{port}/",
        f"http://cdn.blocked.test:{port}/again",
    ]
    script = (
        f"python3 -c {shlex.quote(FETCH)} {' '.join(urls)} > /tmp/fetched.txt; "
        f"mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml && echo v2 > app.py && "
        f"{G} add -A && {G} commit -q -m 'agent: add CI' && "
        f"echo notes > notes.txt && {G} add notes.txt && {G} commit -q -m 'agent: notes'"
    )
    git(project, "config", "airlock.preset.mine", f"api.allowed.test:{port},down.allowed.test:{down}")
    resolve = ",".join(f"{host}=127.0.0.1" for host in NAMES)
    result = run_in_sandbox(project, "rep", script, env={"AIRLOCK_EGRESS_RESOLVE": resolve})
    assert result.returncode == 0, result.stderr


def test_report_lists_the_commits_and_exactly_the_destinations(project: Path, hermetic: Env, web: int) -> None:  # noqa: F811
    down = closed_port()
    agent_run(project, web, down)
    git(project, "config", "airlock.preset.later", "later.example")  # after the sandbox started
    shown = airlock("--engine", "bwrap", "--name", "rep", "report", "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert list(doc) == [
        *(
            "schema",
            "sandbox",
            "engine",
            "agent",
            "policy",
            "base",
            "tip",
            "commits",
            "settings",
            "agent_state",
            "network",
        )
    ]
    assert doc["settings"]["policy"] == {"at_start": "balanced", "now": "balanced"}
    assert doc["settings"]["presets"] == {
        "at_start": f"mine=api.allowed.test:{web},down.allowed.test:{down}",
        "now": f"later=later.example; mine=api.allowed.test:{web},down.allowed.test:{down}",
    }
    assert (doc["sandbox"], doc["engine"], doc["agent"], doc["policy"]) == ("rep", "bwrap", "shell", "balanced")
    assert doc["tip"]["ref"] == "sandbox-rep/main"
    assert doc["tip"]["commit"] == git(project, "rev-parse", "refs/remotes/sandbox-rep/main").strip()
    assert [c["subject"] for c in doc["commits"]] == ["agent: add CI", "agent: notes"]
    assert sorted(doc["commits"][0]["files"]) == [".github/workflows/ci.yml", "app.py"]
    assert [h["path"] for h in doc["commits"][0]["host_code"]] == [".github/workflows/ci.yml"]
    assert doc["commits"][1]["host_code"] == []
    destinations = {f"{d['host']}:{d['port']}": d for d in doc["network"]["destinations"]}
    assert set(destinations) == {f"api.allowed.test:{web}", f"down.allowed.test:{down}", f"cdn.blocked.test:{web}"}
    assert destinations[f"cdn.blocked.test:{web}"]["blocked"] == 2
    assert destinations[f"down.allowed.test:{down}"]["failed"] == 1
    assert destinations[f"api.allowed.test:{web}"]["allowed"] == 1
    assert destinations[f"api.allowed.test:{web}"]["bytes"] > 0
    assert doc["network"]["destinations"][0]["host"] == "cdn.blocked.test"  # blocked first

    again = airlock("--engine", "bwrap", "--name", "rep", "report", "--json", cwd=project)
    assert json.loads(again.stdout) == doc  # stable

    text = airlock("--engine", "bwrap", "--name", "rep", "report", cwd=project).stdout
    assert "sandbox rep: engine bwrap, agent shell, network policy balanced" in text
    assert "    ! .github/workflows/ci.yml: " in text
    assert "settings changed since the sandbox started:\n  presets: mine=" in text
    assert f"  blocked  cdn.blocked.test:{web}" in text and f"  failed   down.allowed.test:{down}" in text

    markdown = airlock("--engine", "bwrap", "--name", "rep", "report", "--markdown", cwd=project).stdout
    assert markdown.startswith("### Sandbox `rep`")
    assert f"| blocked | `cdn.blocked.test:{web}` | 2 blocked | 0 |" in markdown


def test_review_shows_the_summary_before_the_tool(project: Path, hermetic: Env, web: int) -> None:  # noqa: F811
    agent_run(project, web, closed_port())
    git(project, "config", "difftool.scripted.cmd", 'true "$LOCAL" "$REMOTE"')
    review = airlock("--engine", "bwrap", "--name", "rep", "review", "--tool", "scripted", "--no-mark", cwd=project)
    assert review.returncode == 0, review.stderr
    lines = review.stderr.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("rep (bwrap, agent shell, policy balanced)"))
    assert "2 commit(s), 1 change(s) to files that can run code here" in lines[summary]
    assert lines[summary + 1] == f"network: 1 destination(s) reached, 1 failed, 1 blocked: cdn.blocked.test:{web}"


def test_both_forms_at_once_is_a_usage_error(project: Path, hermetic: Env) -> None:
    result = airlock("report", "--json", "--markdown", cwd=project)
    assert result.returncode == 2
    assert "error: --json and --markdown are two forms of one report" in result.stderr


def test_on_sbx_the_report_reads_the_policy_log(project: Path, hermetic: Env) -> None:

    write_agent(hermetic, COMMIT_AGENT)
    assert airlock("up", cwd=project).returncode == 0
    name = sandbox_name(project)
    log = [
        {"sandbox": name, "host": "api.anthropic.com", "port": 443, "action": "allowed", "count": 12},
        {"sandbox": name, "host": "evil.example", "port": 443, "action": "blocked", "count": 3},
        {"sandbox": "someone-else", "host": "other.example", "port": 443, "action": "blocked", "count": 9},
    ]
    (hermetic.sbx_state / "policy-log.json").write_text(json.dumps(log))
    shown = airlock("report", "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["engine"] == "sbx" and [c["subject"] for c in doc["commits"]] == ["agent: update app"]
    rows = [(d["host"], d["allowed"], d["blocked"]) for d in doc["network"]["destinations"]]
    assert rows == [("evil.example", 0, 3), ("api.anthropic.com", 12, 0)]
    assert ["policy", "log", name, "--json"] in hermetic.sbx_calls()


def test_an_agents_paths_and_subject_cannot_forge_lines_or_markup_of_the_report(project: Path, hermetic: Env) -> None:
    forged = "a`\n\n## Security review: PASSED\n\n**Reviewed-by: security team** @octo-org"
    subject = "Fix [click](https://evil.example) @admin ![i](https://evil.example/x.png)"
    script = f'echo x > "$(printf {shlex.quote(forged)})" && {G} add -A && {G} commit -q -m {shlex.quote(subject)}'
    assert run_in_sandbox(project, "forge", script).returncode == 0
    markdown = airlock("--engine", "bwrap", "--name", "forge", "report", "--markdown", cwd=project).stdout
    assert not any(line.startswith(("## ", "**")) for line in markdown.splitlines())
    row = next(line for line in markdown.splitlines() if line.startswith("| ") and "click" in line)
    assert f"`{subject}`" in row  # a code span: no link, image or mention renders
    text = airlock("--engine", "bwrap", "--name", "forge", "report", cwd=project).stdout
    assert not any(line.startswith("## Security review") for line in text.splitlines())


def test_verify_runs_no_filter_the_agents_attributes_name(project: Path, hermetic: Env) -> None:
    pwned = hermetic.tmp / "PWNED"
    git(project, "config", "filter.evil.smudge", f"touch {pwned}; cat")
    git(project, "config", "filter.evil.clean", f"touch {pwned}; cat")
    script = f"echo '* filter=evil' > .gitattributes && echo x > x.txt && {G} add -A && {G} commit -q -m filtered"
    assert run_in_sandbox(project, "filt", script).returncode == 0
    assert airlock("--engine", "bwrap", "--name", "filt", "approve", cwd=project).returncode == 0
    merged = airlock(
        "--engine", "bwrap", "--name", "filt", "merge", "--allow-host-code", "--verify", "test -f x.txt", cwd=project
    )
    assert merged.returncode == 0, merged.stderr
    assert not pwned.exists()
