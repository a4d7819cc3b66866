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


def scoped(env: Env, name: str) -> set[tuple[str, str]]:
    """(action, resource) of the rules scoped to one sandbox, as the emulator stores them."""
    return {(r["action"], r["resource"]) for r in env.sbx_state_json()["policy"]["rules"] if r["sandbox"] == name}


def reaches(name: str, host: str) -> bool:
    """What sbx's policy says about ``host`` for the sandbox ``name`` (`sbx policy check network`)."""
    return sbx("policy", "check", "network", "--sandbox", name, host).stdout.startswith("Allowed")


def two_running_sandboxes(project: Path, env: Env) -> tuple[str, str]:
    """This repository's sandbox and another repository's, both running."""
    write_agent(env, "true\n")
    other = make_repo(env.tmp / "other" / "service")
    assert airlock("up", cwd=project).returncode == 0
    assert airlock("up", cwd=other).returncode == 0
    return sandbox_name(project), sandbox_name(other)


def test_lockdown_of_one_sandbox_leaves_another_alone(project: Path, hermetic: Env) -> None:
    name, other = two_running_sandboxes(project, hermetic)
    count = len(hermetic.sbx_calls())
    result = airlock("lockdown", cwd=project, env={"ALLOW": "example.com"})
    assert result.returncode == 0, result.stderr
    assert f"sandbox {name}: only 1 host rule(s) reachable, from now on; other sandboxes unchanged" in result.stderr

    calls = [c for c in hermetic.sbx_calls()[count:] if c[:1] == ["policy"]]
    assert ["policy", "reset", "--force"] not in calls
    assert all(c[:2] in (["policy", "init"], ["policy", "ls"]) or c[3:5] == ["--sandbox", name] for c in calls), calls
    assert reaches(name, "example.com")
    for host in ("github.com", "api.anthropic.com", "pypi.org", "x.github.com"):
        assert not reaches(name, host), host
    # the other sandbox: same rules as before, same reach, still running
    assert scoped(hermetic, other) == set()
    assert reaches(other, "github.com") and reaches(other, "pypi.org") and not reaches(other, "example.com")
    state = hermetic.sbx_state_json()
    assert state["sandboxes"][other]["status"] == "running"
    assert state["sandboxes"][name]["status"] == "running"
    assert state["policy"]["default"] == "balanced", "the global policy is not touched"


def test_lockdown_default_allowlist(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    result = airlock("lockdown", cwd=project)
    assert result.returncode == 0, result.stderr
    mine = scoped(hermetic, name)
    assert {("allow", host) for host in DEFAULT_HOSTS} <= mine
    assert ("deny", "pypi.org") in mine and ("deny", "files.pythonhosted.org") in mine
    assert not {resource for action, resource in mine if action == "deny"} & set(DEFAULT_HOSTS)
    for host in DEFAULT_HOSTS:
        assert reaches(name, host), host
    assert not reaches(name, "pypi.org")
    # a global wildcard wider than an ALLOW entry cannot be denied without blocking it: said, not hidden
    assert "note: left open: **.github.com" in result.stderr


def test_lockdown_custom_allowlist_and_explicit_name(project: Path, hermetic: Env) -> None:
    git(project, "config", "airlock.allow", "pypi.org, *.corp.example:8443")
    result = airlock("--name", "locked", "lockdown", cwd=project)
    assert result.returncode == 0, result.stderr
    assert policy_calls(hermetic)[-1] == [
        "policy",
        "allow",
        "network",
        "--sandbox",
        "locked",
        "pypi.org,*.corp.example:8443",
    ]
    assert reaches("locked", "pypi.org") and reaches("locked", "a.corp.example:8443")
    assert not reaches("locked", "files.pythonhosted.org") and not reaches("locked", "github.com")


def test_lockdown_replaces_earlier_rules(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    assert airlock("lockdown", cwd=project, env={"ALLOW": "one.example"}).returncode == 0
    assert airlock("lockdown", cwd=project, env={"ALLOW": "two.example"}).returncode == 0
    allowed = {resource for action, resource in scoped(hermetic, name) if action == "allow"}
    assert allowed == {"two.example"}
    assert reaches(name, "two.example") and not reaches(name, "one.example")


def test_lockdown_refuses_when_every_host_is_allowed(project: Path, hermetic: Env) -> None:
    sbx("policy", "init", "allow-all")
    before = hermetic.sbx_state_json()["policy"]
    result = airlock("lockdown", cwd=project, env={"ALLOW": "example.com"})
    assert result.returncode == 1
    assert "cannot be narrowed to ALLOW on its own" in result.stderr
    assert "hint: `git airlock lockdown --global`" in result.stderr
    assert hermetic.sbx_state_json()["policy"] == before


def test_lockdown_global_resets_every_sandbox(project: Path, hermetic: Env) -> None:
    name, other = two_running_sandboxes(project, hermetic)
    refused = airlock("lockdown", "--global", cwd=project)
    assert refused.returncode == 1
    assert "error: the network policy was not changed" in refused.stderr and "hint: pass --yes" in refused.stderr
    assert hermetic.sbx_state_json()["sandboxes"][other]["status"] == "running", "a refused reset stops nothing"

    count = len(hermetic.sbx_calls())
    result = airlock("lockdown", "--global", "--yes", cwd=project, env={"ALLOW": "example.com"})
    assert result.returncode == 0, result.stderr
    assert "every sandbox locked down" in result.stderr
    assert hermetic.sbx_calls()[count:] == [
        ["policy", "reset", "--force"],
        ["policy", "init", "deny-all"],
        ["policy", "allow", "network", "--sandbox", name, "example.com"],
    ]
    state = hermetic.sbx_state_json()
    assert state["policy"]["default"] == "deny-all"
    assert {state["sandboxes"][n]["status"] for n in (name, other)} == {"stopped"}
    assert reaches(name, "example.com") and not reaches(other, "example.com") and not reaches(other, "github.com")


def test_lockdown_dry_run_prints_and_runs_nothing(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    result = airlock("--dry-run", "lockdown", cwd=project, env={"ALLOW": "example.com"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sbx policy init balanced",
        f"sbx policy ls {name} --json",
        f"# sbx policy rm network --sandbox {name} --resource <the rules scoped to {name} that you can edit>",
        f"# sbx policy deny network --sandbox {name} <every allowed resource above outside ALLOW>",
        f"sbx policy allow network --sandbox {name} example.com",
        "# (lock down reads the rules first, so a real run names them)",
    ]
    machine_wide = airlock("--dry-run", "lockdown", "--global", cwd=project, env={"ALLOW": "example.com"})
    assert machine_wide.stdout.splitlines() == [
        "sbx policy reset --force",
        "sbx policy init deny-all",
        f"sbx policy allow network --sandbox {name} example.com",
    ]
    assert hermetic.sbx_calls() == []


def test_unlock_undoes_this_sandboxes_lockdown_only(project: Path, hermetic: Env) -> None:
    name, other = two_running_sandboxes(project, hermetic)
    sbx("policy", "allow", "network", "--sandbox", other, "other.example")
    assert airlock("lockdown", cwd=project, env={"ALLOW": "example.com"}).returncode == 0
    count = len(hermetic.sbx_calls())
    result = airlock("unlock", cwd=project)
    assert result.returncode == 0, result.stderr
    assert f"sandbox {name}: unlocked, from now on; other sandboxes unchanged" in result.stderr
    calls = hermetic.sbx_calls()[count:]
    assert calls[0] == ["policy", "ls", name, "--json"]
    assert calls[1][:7] == ["policy", "rm", "network", "--sandbox", name, "--resource", calls[1][6]]
    assert len(calls) == 2
    assert scoped(hermetic, name) == set()
    assert reaches(name, "github.com") and not reaches(name, "example.com")
    assert scoped(hermetic, other) == {("allow", "other.example")}
    assert {hermetic.sbx_state_json()["sandboxes"][n]["status"] for n in (name, other)} == {"running"}
    again = airlock("unlock", cwd=project)
    assert again.returncode == 0 and hermetic.sbx_calls()[-1] == ["policy", "ls", name, "--json"]


def test_unlock_global_resets_every_sandbox(project: Path, hermetic: Env) -> None:
    assert airlock("lockdown", cwd=project).returncode == 0
    policy_before = hermetic.sbx_state_json()["policy"]
    count = len(hermetic.sbx_calls())
    refused = airlock("unlock", "--global", cwd=project)
    assert refused.returncode == 1 and "not changed" in refused.stderr and "--yes" in refused.stderr
    assert hermetic.sbx_calls()[count:] == [] and hermetic.sbx_state_json()["policy"] == policy_before

    result = airlock("unlock", "--global", "--yes", cwd=project, env={"GLOBAL_NETWORK_POLICY": "deny-all"})
    assert result.returncode == 0, result.stderr
    assert "reset to deny-all" in result.stderr
    assert hermetic.sbx_calls()[count:] == [["policy", "reset", "--force"], ["policy", "init", "deny-all"]]
    assert hermetic.sbx_state_json()["policy"] == {"default": "deny-all", "rules": []}

    git(project, "config", "airlock.globalNetworkPolicy", "allow-all")
    assert airlock("unlock", "--global", "--yes", cwd=project).returncode == 0
    assert hermetic.sbx_state_json()["policy"]["default"] == "allow-all"


def test_unlock_outside_a_repository_needs_global(hermetic: Env) -> None:
    elsewhere = hermetic.tmp / "plain"
    elsewhere.mkdir()
    refused = airlock("unlock", cwd=elsewhere)
    assert refused.returncode == 1
    assert "hint: run it in the sandbox's repository, or `git airlock unlock --global`" in refused.stderr
    result = airlock("unlock", "--global", "--yes", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert hermetic.sbx_state_json()["policy"]["default"] == "balanced"
    assert not (elsewhere / ".git").exists()


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


@pytest.mark.parametrize("command", [("unlock",), ("up",), ("lockdown",), ("unlock", "--global", "--yes")])
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
    name = sandbox_name(project)
    assert airlock("lockdown", cwd=project, env={"ALLOW": "example.com"}).returncode == 0
    locked = scoped(hermetic, name)
    up = airlock("up", cwd=project)
    assert up.returncode == 0, up.stderr
    assert scoped(hermetic, name) == locked, "up must not undo a lockdown"
    assert reaches(name, "example.com") and not reaches(name, "github.com")


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
