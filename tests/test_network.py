"""Network policy: lockdown, unlock, net, and the policy `up` initialises, against the sbx emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import FAKES, Env, airlock, git, write_agent

DEFAULT_HOSTS = ("api.anthropic.com", "api.openai.com", "github.com", "registry.npmjs.org")


def sandbox_name(repo: Path) -> str:
    rows = json.loads(airlock("config", "--json", cwd=repo).stdout)
    return next(row["value"] for row in rows if row["env"] == "(derived)")


def policy_calls(env: Env) -> list[list[str]]:
    return [call for call in env.sbx_calls() if call[:1] == ["policy"]]


def sbx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FAKES / "sbx"), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "file.txt").write_text("x\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


def test_lockdown_default_allowlist(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    result = airlock("lockdown", "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    assert f"for {name}" in result.stderr

    calls = policy_calls(hermetic)
    assert calls[:2] == [["policy", "reset", "--force"], ["policy", "init", "deny-all"]]
    assert len(calls) == 3
    assert calls[2][:5] == ["policy", "allow", "network", "--sandbox", name]
    allowed = calls[2][5].split(",")
    for host in DEFAULT_HOSTS:
        assert host in allowed

    policy = hermetic.sbx_state_json()["policy"]
    assert policy["default"] == "deny-all"
    assert {rule["sandbox"] for rule in policy["rules"]} == {name}, "rules are scoped to this sandbox only"
    assert {rule["action"] for rule in policy["rules"]} == {"allow"}
    resources = {rule["resource"] for rule in policy["rules"]}
    assert set(DEFAULT_HOSTS) <= resources
    assert "**" not in resources


def test_lockdown_custom_allowlist(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    result = airlock("lockdown", "--yes", cwd=project, env={"ALLOW": "example.com,*.corp.example:8443"})
    assert result.returncode == 0, result.stderr
    assert policy_calls(hermetic)[-1] == [
        "policy",
        "allow",
        "network",
        "--sandbox",
        name,
        "example.com,*.corp.example:8443",
    ]
    policy = hermetic.sbx_state_json()["policy"]
    assert policy["default"] == "deny-all"
    assert sorted((r["resource"], r["sandbox"]) for r in policy["rules"]) == [
        ("*.corp.example:8443", name),
        ("example.com", name),
    ]


def test_lockdown_allowlist_from_git_config_and_explicit_name(project: Path, hermetic: Env) -> None:
    git(project, "config", "airlock.allow", "pypi.org, files.pythonhosted.org")
    result = airlock("--name", "locked", "lockdown", "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    rules = hermetic.sbx_state_json()["policy"]["rules"]
    assert sorted((r["resource"], r["sandbox"]) for r in rules) == [
        ("files.pythonhosted.org", "locked"),
        ("pypi.org", "locked"),
    ]


def test_lockdown_replaces_earlier_rules(project: Path, hermetic: Env) -> None:
    assert airlock("lockdown", "--yes", cwd=project, env={"ALLOW": "one.example"}).returncode == 0
    assert airlock("lockdown", "--yes", cwd=project, env={"ALLOW": "two.example"}).returncode == 0
    rules = hermetic.sbx_state_json()["policy"]["rules"]
    assert [r["resource"] for r in rules] == ["two.example"]


@pytest.mark.parametrize(
    ("allow", "says"),
    [
        ("*", "would allow every host"),
        ("**", "would allow every host"),
        ("https://x.com/path", "is a URL"),
        ("x.com/path", "is a URL"),
        ("a,,b", "empty entry"),
        ("example.com,", "empty entry"),
        ("host:99999", "bad port"),
        ("host:0", "bad port"),
        ("host:http", "bad port"),
        ("host:", "bad port"),
        # str.isdigit() is not enough: sbx only takes ASCII digits
        ("example.com:\u0664\u0664\u0663", "bad port"),  # Arabic-Indic digits 443
        ("example.com:\u00b9", "bad port"),  # superscript one
        ("bad_host", "is not a host name"),
        ("-lead.example", "is not a host name"),
        ("a..b", "is not a host name"),
        ("ok.example,bad!host", "is not a host name"),
    ],
)
def test_lockdown_refuses_bad_allowlists(project: Path, hermetic: Env, allow: str, says: str) -> None:
    sbx("policy", "init", "balanced")
    before = hermetic.sbx_state_json()["policy"]
    result = airlock("lockdown", "--yes", cwd=project, env={"ALLOW": allow})
    assert result.returncode == 1
    assert says in result.stderr
    assert "error: " in result.stderr and "\nhint: " in result.stderr
    assert policy_calls(hermetic) == [["policy", "init", "balanced"]], "validation happens before any sbx call"
    assert hermetic.sbx_state_json()["policy"] == before


def test_lockdown_bad_allowlist_from_git_config(project: Path, hermetic: Env) -> None:
    git(project, "config", "airlock.allow", "*")
    result = airlock("lockdown", "--yes", cwd=project)
    assert result.returncode == 1
    assert "would allow every host" in result.stderr
    assert "hint: use `git airlock unlock`" in result.stderr
    assert policy_calls(hermetic) == []


def test_lockdown_without_yes_and_terminal_is_refused(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    assert airlock("up", cwd=project).returncode == 0
    name = sandbox_name(project)
    state_before = hermetic.sbx_state_json()
    assert state_before["sandboxes"][name]["status"] == "running"
    calls_before = hermetic.sbx_calls()

    result = airlock("lockdown", cwd=project)
    assert result.returncode == 1
    assert "error: the network policy was not changed" in result.stderr
    assert "hint: pass --yes" in result.stderr
    new_calls = hermetic.sbx_calls()[len(calls_before) :]
    assert not [call for call in new_calls if call[:1] == ["policy"]]
    state_after = hermetic.sbx_state_json()
    assert state_after["policy"] == state_before["policy"] == {"default": "balanced", "rules": []}
    assert state_after["sandboxes"][name]["status"] == "running", "a refused reset must not stop sandboxes"


def test_unlock_without_yes_and_terminal_is_refused(project: Path, hermetic: Env) -> None:
    assert airlock("lockdown", "--yes", cwd=project).returncode == 0
    policy_before = hermetic.sbx_state_json()["policy"]
    count = len(hermetic.sbx_calls())
    result = airlock("unlock", cwd=project)
    assert result.returncode == 1
    assert "not changed" in result.stderr and "--yes" in result.stderr
    assert not [c for c in hermetic.sbx_calls()[count:] if c[:1] == ["policy"]]
    assert hermetic.sbx_state_json()["policy"] == policy_before


def test_lockdown_dry_run_prints_and_runs_nothing(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    result = airlock("--dry-run", "lockdown", cwd=project, env={"ALLOW": "example.com"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sbx policy reset --force",
        "sbx policy init deny-all",
        f"sbx policy allow network --sandbox {name} example.com",
    ]
    assert hermetic.sbx_calls() == []


def test_unlock_resets_to_balanced(project: Path, hermetic: Env) -> None:
    assert airlock("lockdown", "--yes", cwd=project).returncode == 0
    count = len(hermetic.sbx_calls())
    result = airlock("unlock", "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "reset to balanced" in result.stderr
    assert hermetic.sbx_calls()[count:] == [["policy", "reset", "--force"], ["policy", "init", "balanced"]]
    assert hermetic.sbx_state_json()["policy"] == {"default": "balanced", "rules": []}


def test_unlock_uses_global_network_policy(project: Path, hermetic: Env) -> None:
    sbx("policy", "init", "balanced")
    result = airlock("unlock", "--yes", cwd=project, env={"GLOBAL_NETWORK_POLICY": "deny-all"})
    assert result.returncode == 0, result.stderr
    assert policy_calls(hermetic)[-2:] == [["policy", "reset", "--force"], ["policy", "init", "deny-all"]]
    assert hermetic.sbx_state_json()["policy"]["default"] == "deny-all"

    git(project, "config", "airlock.globalNetworkPolicy", "allow-all")
    assert airlock("unlock", "--yes", cwd=project).returncode == 0
    assert hermetic.sbx_state_json()["policy"]["default"] == "allow-all"


def test_unlock_works_outside_a_repository(hermetic: Env) -> None:
    elsewhere = hermetic.tmp / "plain"
    elsewhere.mkdir()
    result = airlock("unlock", "--yes", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert hermetic.sbx_state_json()["policy"]["default"] == "balanced"
    assert not (elsewhere / ".git").exists()


@pytest.mark.parametrize("command", [("unlock", "--yes"), ("up",), ("lockdown", "--yes")])
def test_invalid_global_network_policy(project: Path, hermetic: Env, command: tuple[str, ...]) -> None:
    write_agent(hermetic, "true\n")
    result = airlock(*command, cwd=project, env={"GLOBAL_NETWORK_POLICY": "open"})
    assert result.returncode == 1
    assert "error: unknown network policy 'open' (from environment (GLOBAL_NETWORK_POLICY))" in result.stderr
    assert "hint: use one of: allow-all, balanced, deny-all" in result.stderr
    assert hermetic.sbx_calls() == []


def test_invalid_global_network_policy_names_git_config(project: Path, hermetic: Env) -> None:
    git(project, "config", "airlock.globalNetworkPolicy", "open")
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert "unknown network policy 'open' (from git config (local))" in result.stderr


def test_net_shows_this_sandboxes_log(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    hermetic.sbx_state.mkdir(parents=True, exist_ok=True)
    (hermetic.sbx_state / "policy-log.json").write_text(
        json.dumps(
            [
                {"sandbox": name, "host": "api.anthropic.com", "port": 443, "action": "allowed", "count": 12},
                {"sandbox": name, "host": "evil.example", "port": 443, "action": "blocked", "count": 3},
                {"sandbox": "someone-else", "host": "other.example", "port": 80, "action": "blocked", "count": 1},
            ]
        )
    )
    result = airlock("net", cwd=project)
    assert result.returncode == 0, result.stderr
    assert hermetic.sbx_calls() == [["policy", "log", name]]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SANDBOX", "HOST", "PORT", "ACTION", "COUNT"]
    assert any(line.split() == [name, "api.anthropic.com", "443", "allowed", "12"] for line in lines)
    assert any(line.split() == [name, "evil.example", "443", "blocked", "3"] for line in lines)
    assert "other.example" not in result.stdout

    every = airlock("net", "--all", cwd=project)
    assert every.returncode == 0
    assert hermetic.sbx_calls()[-1] == ["policy", "log"]
    assert "other.example" in every.stdout and "evil.example" in every.stdout


def test_net_without_sbx(project: Path, no_sbx: None) -> None:
    result = airlock("net", cwd=project)
    assert result.returncode == 1
    assert "error: no sandbox engine is installed: neither `sbx` (Docker Sandboxes) nor `bwrap`" in result.stderr
    assert "hint: install Docker Sandboxes" in result.stderr


def test_up_initialises_the_policy_once_and_tolerates_already_initialized(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    other = make_repo(hermetic.tmp / "other" / "service")

    first = airlock("up", cwd=project)
    assert first.returncode == 0, first.stderr
    second = airlock("up", cwd=other)
    assert second.returncode == 0, second.stderr

    assert policy_calls(hermetic) == [["policy", "init", "balanced"], ["policy", "init", "balanced"]]
    # the second init really failed inside sbx; git-airlock went on anyway
    assert sbx("policy", "init", "balanced").stderr.startswith("Error: policy already initialized")
    state = hermetic.sbx_state_json()
    assert state["policy"]["default"] == "balanced"
    assert {sandbox_name(project), sandbox_name(other)} <= set(state["sandboxes"])


def test_up_keeps_an_existing_lockdown(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    assert airlock("lockdown", "--yes", cwd=project, env={"ALLOW": "example.com"}).returncode == 0
    up = airlock("up", cwd=project)
    assert up.returncode == 0, up.stderr
    policy = hermetic.sbx_state_json()["policy"]
    assert policy["default"] == "deny-all", "up must not reset a policy that is already set"
    assert [r["resource"] for r in policy["rules"]] == ["example.com"]


def test_up_with_deny_all_default(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    up = airlock("up", cwd=project, env={"GLOBAL_NETWORK_POLICY": "deny-all"})
    assert up.returncode == 0, up.stderr
    assert ["policy", "init", "deny-all"] in hermetic.sbx_calls()
    assert hermetic.sbx_state_json()["policy"]["default"] == "deny-all"


def test_up_stops_when_logged_out(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    up = airlock("up", cwd=project, env={"SBX_FAKE_LOGIN": "out"})
    assert up.returncode == 1
    assert "not logged in" in up.stderr
    assert "hint: run `git airlock doctor`" in up.stderr
    assert policy_calls(hermetic) == []
    assert not any(call[:1] == ["run"] for call in hermetic.sbx_calls())
