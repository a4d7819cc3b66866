"""Direct tests of the ``sbx`` test emulator (tests/fakes/sbx).

The rest of the suite trusts the emulator to behave like Docker Sandboxes'
``sbx`` where git-airlock depends on it (clone + git remote + stop/restart +
rm semantics), so those behaviours are pinned down here on their own.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SBX = Path(__file__).parent / "fakes" / "sbx"
Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An isolated environment: own HOME, git identity, and emulator state dir."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SBX_"))}
    base.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Host User",
        GIT_AUTHOR_EMAIL="host@example.invalid",
        GIT_COMMITTER_NAME="Host User",
        GIT_COMMITTER_EMAIL="host@example.invalid",
        SBX_FAKE_STATE=str(tmp_path / "sbx-state"),
    )
    return base


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    return path


@pytest.fixture
def sbx(env: dict[str, str], repo: Path) -> Iterator[Runner]:
    """Run the emulator in ``repo``; always shut its git daemons down afterwards."""

    def run(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SBX), *args],
            cwd=repo,
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )

    yield run
    assert run("_emulator", "shutdown").returncode == 0


def git(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)


def refs(repo: Path, env: dict[str, str]) -> dict[str, str]:
    out = git(repo, env, "for-each-ref", "--format=%(refname) %(objectname)").stdout
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    """A stand-in agent that commits one file in the sandbox's clone."""
    script = tmp_path / "agent.sh"
    script.write_text(
        "#!/bin/sh\nset -e\necho \"$SBX_SANDBOX_NAME $*\" > work.txt\ngit add work.txt\ngit commit -q -m 'agent work'\n"
    )
    script.chmod(0o755)
    return script


def test_version_says_emulator(sbx: Runner) -> None:
    for args in (["version"], ["--version"]):
        result = sbx(*args)
        assert result.returncode == 0
        assert result.stdout == "sbx version v0.43.0 (git-airlock test emulator, not Docker Sandboxes)\n"
    assert "test emulator" in sbx("--help").stdout.splitlines()[0]


def test_missing_state_dir_is_an_error(env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if k != "SBX_FAKE_STATE"}
    result = subprocess.run([str(SBX), "ls"], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "SBX_FAKE_STATE is not set" in result.stderr


def test_agent_commit_is_fetchable(sbx: Runner, repo: Path, env: dict[str, str], agent: Path) -> None:
    assert sbx("create", "--clone", "--name", "box", "claude", str(repo)).stdout == ("Created sandbox box\n")
    fetch = git(repo, env, "config", "--get-all", "remote.sandbox-box.fetch").stdout.split()
    assert fetch == [
        "+refs/heads/*:refs/remotes/sandbox-box/*",
        "+refs/heads/*:refs/sandboxes/box/*",
    ]

    ran = sbx("run", "box", "--", "--flag", extra_env={"SBX_FAKE_AGENT": str(agent)})
    assert ran.returncode == 0, ran.stderr
    assert git(repo, env, "fetch", "-q", "sandbox-box").returncode == 0
    after = refs(repo, env)
    tip = after["refs/remotes/sandbox-box/main"]
    assert after["refs/sandboxes/box/main"] == tip != after["refs/heads/main"]
    shown = git(repo, env, "show", f"{tip}:work.txt").stdout
    assert shown == "box --flag\n"
    author = git(repo, env, "log", "-1", "--format=%an <%ae>", tip).stdout.strip()
    assert author == "Sandbox Agent <agent@sandbox.invalid>"


def test_stop_breaks_fetch_and_restart_moves_port(sbx: Runner, repo: Path, env: dict[str, str]) -> None:
    assert sbx("run", "--clone", "-d", "codex").returncode == 0
    url = git(repo, env, "config", "remote.sandbox-codex-project.url").stdout.strip()
    assert url.startswith("git://127.0.0.1:") and url.endswith("/project")
    assert git(repo, env, "fetch", "-q", "sandbox-codex-project").returncode == 0

    assert sbx("stop", "codex-project").returncode == 0
    assert git(repo, env, "config", "remote.sandbox-codex-project.url").stdout.strip() == url
    assert git(repo, env, "fetch", "-q", "sandbox-codex-project").returncode != 0
    assert json.loads(sbx("ls", "--json").stdout)["sandboxes"][0]["status"] == "stopped"

    assert sbx("exec", "codex-project", "true").returncode == 0
    new_url = git(repo, env, "config", "remote.sandbox-codex-project.url").stdout.strip()
    assert new_url != url
    assert git(repo, env, "fetch", "-q", "sandbox-codex-project").returncode == 0
    fetch = git(repo, env, "config", "--get-all", "remote.sandbox-codex-project.fetch")
    assert len(fetch.stdout.split()) == 2

    failed = sbx("exec", "codex-project", "sh", "-c", "exit 7")
    assert failed.returncode == 7
    missing = sbx("exec", "codex-project", "no-such-command")
    assert missing.returncode == 127 and missing.stderr.startswith("Error: executable not found")


def test_ls_json_shapes(sbx: Runner, repo: Path) -> None:
    assert sbx("ls", "--json").stdout.strip() == '{\n  "sandboxes": []\n}'
    assert sbx("create", "--clone", "--name=b1", "shell", str(repo)).returncode == 0
    expected = {
        "name": "b1",
        "agent": "shell",
        "status": "running",
        "workspaces": [str(repo)],
        "ports": [],
    }
    assert json.loads(sbx("ls", "--json").stdout) == {"sandboxes": [expected]}
    array = sbx("ls", "--json", extra_env={"SBX_FAKE_LS_FORMAT": "array"}).stdout
    assert json.loads(array) == [expected]
    prefixed = sbx("ls", "--json", extra_env={"SBX_FAKE_LS_FORMAT": "prefixed"}).stdout
    first, blank, rest = prefixed.split("\n", 2)
    assert first.startswith("Update available") and blank == ""
    assert json.loads(rest) == {"sandboxes": [expected]}
    assert sbx("ls", "-q").stdout == "b1\n"
    assert sbx("ls").stdout.splitlines()[0].split() == ["SANDBOX", "AGENT", "STATUS", "WORKSPACE"]


def test_rm_needs_force_and_keeps_recovery_refs(sbx: Runner, repo: Path, env: dict[str, str], agent: Path) -> None:
    assert sbx("create", "--clone", "--name", "box", "claude", str(repo)).returncode == 0
    assert sbx("exec", "box", str(agent)).returncode == 0

    refused = sbx("rm", "box")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: confirmation required")

    assert git(repo, env, "fetch", "-q", "sandbox-box").returncode == 0
    removed = sbx("rm", "--force", "box")
    assert removed.returncode == 0, removed.stderr
    assert "Warning" not in removed.stderr  # the work was fetched, so nothing is lost
    assert git(repo, env, "config", "--get-regexp", r"^remote\.sandbox-box\.").stdout == ""
    left = refs(repo, env)
    assert not [r for r in left if r.startswith("refs/remotes/sandbox-box/")]
    assert "refs/sandboxes/box/main" in left
    assert json.loads(sbx("ls", "--json").stdout) == {"sandboxes": []}


def test_rm_warns_about_unfetched_work(sbx: Runner, repo: Path, agent: Path) -> None:
    assert sbx("create", "--clone", "--name", "box", "claude", str(repo)).returncode == 0
    assert sbx("exec", "box", str(agent)).returncode == 0
    removed = sbx("rm", "-f", "box")
    assert removed.returncode == 0
    assert "Warning: sandbox box has commits that exist nowhere else" in removed.stderr


def test_policy_init_twice_and_rules(sbx: Runner) -> None:
    not_ready = sbx("policy", "allow", "network", "example.com")
    assert not_ready.returncode == 1 and "not initialized" in not_ready.stderr
    assert sbx("policy", "init", "balanced").stdout == "Network policy initialized: balanced\n"
    again = sbx("policy", "init", "deny-all")
    assert again.returncode == 1 and "already initialized" in again.stderr
    preset = json.loads(sbx("policy", "ls", "--json").stdout)["rules"]
    assert preset and {(r["scope"], r["decision"]) for r in preset} == {("global", "allow")}
    added = sbx("policy", "allow", "network", "example.com,*.pypi.org:443,**")
    assert added.stdout == "Added 3 rule(s)\n"
    for bad in ("*", "https://x.org/y", "a.org:0", "a.org,,b.org"):
        result = sbx("policy", "deny", "network", bad)
        assert result.returncode == 1 and result.stderr.startswith("Error: invalid resource")
    listed = json.loads(sbx("policy", "ls", "--json").stdout)["rules"]
    assert len(listed) == len(preset) + 3
    assert {"resource_type", "scope", "decision", "resources", "editable", "origin"} <= set(listed[-1])


def test_policy_rules_are_scoped_with_sandbox(sbx: Runner) -> None:
    """Global by default, `--sandbox NAME` for one sandbox; `-g` is no longer documented."""
    assert sbx("policy", "init", "deny-all").returncode == 0
    assert sbx("policy", "allow", "network", "shared.example").returncode == 0
    assert sbx("policy", "allow", "network", "--sandbox", "one", "one.example").returncode == 0
    assert sbx("policy", "deny", "network", "--sandbox", "two", "shared.example").returncode == 0
    stale = sbx("policy", "allow", "network", "-g", "x.example")
    assert stale.returncode == 1 and "unknown shorthand flag" in stale.stderr

    def resources(*args: str) -> set[tuple[str, str, str]]:
        rules = json.loads(sbx("policy", "ls", *args, "--json").stdout)["rules"]
        return {(r["scope"], r["decision"], r["resources"][0]) for r in rules}

    assert resources("one") == {("global", "allow", "shared.example"), ("sandbox:one", "allow", "one.example")}
    assert ("sandbox:two", "deny", "shared.example") in resources()

    def check(sandbox: str, host: str) -> str:
        return sbx("policy", "check", "network", "--sandbox", sandbox, host).stdout.strip()

    assert check("one", "one.example") == "Allowed: one.example"
    assert check("two", "one.example") == "Denied: one.example"
    assert check("two", "shared.example") == "Denied: shared.example", "deny wins over a global allow"
    assert check("one", "shared.example") == "Allowed: shared.example"

    # removal is by scope: the global rule survives a sandbox-scoped rm of the same resource
    removed = sbx("policy", "rm", "network", "--sandbox", "two", "--resource", "shared.example")
    assert removed.stdout == "Removed 1 rule(s)\n"
    assert ("global", "allow", "shared.example") in resources()
    assert sbx("policy", "rm", "network", "--sandbox", "two").returncode == 1, "--resource or --id is required"


def test_policy_check_patterns(sbx: Runner) -> None:
    assert sbx("policy", "init", "deny-all").returncode == 0
    assert sbx("policy", "allow", "network", "*.one.example,**.deep.example,port.example:8443").returncode == 0

    def allowed(target: str) -> bool:
        return sbx("policy", "check", "network", target).stdout.startswith("Allowed")

    assert allowed("a.one.example") and not allowed("a.b.one.example") and not allowed("one.example")
    assert allowed("a.b.deep.example") and not allowed("deep.example")
    assert allowed("port.example:8443") and not allowed("port.example") and not allowed("https://port.example/x")


def test_clone_gets_forge_remotes_but_no_local_ones(sbx: Runner, repo: Path, env: dict[str, str]) -> None:
    remotes = {
        "origin": "https://forge.example/me/project.git",
        "upstream": "git@forge.example:them/project.git",
        "backup": str(repo.parent / "backup.git"),
        "mirror": f"file://{repo.parent / 'mirror.git'}",
    }
    for name, url in remotes.items():
        assert git(repo, env, "remote", "add", name, url).returncode == 0
    assert sbx("create", "--clone", "--name", "box", "claude", str(repo)).returncode == 0
    listed = sbx("exec", "box", "git", "remote", "-v").stdout
    copied = {line.split()[0]: line.split()[1] for line in listed.splitlines()}
    assert copied == {"origin": remotes["origin"], "upstream": remotes["upstream"]}


def test_secret_set_takes_only_sbx_services(sbx: Runner, env: dict[str, str]) -> None:
    def stored(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SBX), "secret", "set", *args], env=env, input="value\n", capture_output=True, text=True
        )

    refused = stored("-g", "claude")
    assert refused.returncode == 1 and 'unknown service "claude"' in refused.stderr
    assert stored("-g", "github").returncode == 0
    assert stored("--sandbox", "box", "openai").returncode == 0
    rows = [line.split() for line in sbx("secret", "ls").stdout.splitlines()]
    assert rows == [
        ["SCOPE", "TYPE", "NAME", "SECRET"],
        ["(global)", "service", "github", "****"],
        ["box", "service", "openai", "****"],
    ]


def test_settings_get_set_unset(sbx: Runner) -> None:
    assert sbx("settings", "get", "ssh.agentForwardingEnabled").stdout == "true\n"
    assert sbx("settings", "set", "ssh.agentForwardingEnabled", "false").returncode == 0
    assert sbx("settings", "get", "ssh.agentForwardingEnabled").stdout == "false\n"
    assert sbx("settings", "unset", "ssh.agentForwardingEnabled").returncode == 0
    assert sbx("settings", "get", "ssh.agentForwardingEnabled").stdout == "true\n"
    assert sbx("settings", "get", "no.such.key").returncode == 1


def test_name_agent_and_repo_validation(sbx: Runner, repo: Path, env: dict[str, str]) -> None:
    bad = sbx("create", "--clone", "--name", "bad_name", "claude", str(repo))
    assert bad.returncode == 1 and bad.stderr == 'Error: invalid sandbox name "bad_name"\n'
    assert sbx("create", "--clone", "--name", "x" * 64, "claude", str(repo)).returncode == 1
    unknown = sbx("create", "--clone", "--name", "ok", "robot", str(repo))
    assert unknown.stderr == 'Error: unknown agent "robot"\n'
    assert git(repo, env, "worktree", "add", "-q", "../wt").returncode == 0
    worktree = sbx("create", "--clone", "claude", str(repo.parent / "wt"))
    assert "main worktree" in worktree.stderr
    assert sbx("create", "--clone", "--name", "ok", "claude", str(repo)).returncode == 0
    dup = sbx("create", "--clone", "--name", "ok", "claude", str(repo))
    assert dup.stderr == 'Error: sandbox "ok" already exists\n'


def test_failure_knobs_and_call_log(sbx: Runner, env: dict[str, str]) -> None:
    down = sbx("ls", extra_env={"SBX_FAKE_DAEMON": "down"})
    assert down.returncode == 1 and "cannot connect to sandboxd" in down.stderr
    assert sbx("version", extra_env={"SBX_FAKE_DAEMON": "down"}).returncode == 0
    assert sbx("logout").returncode == 0
    assert sbx("ls").stderr == 'Error: not logged in: run "sbx login"\n'
    assert sbx("login").returncode == 0
    assert sbx("ls").returncode == 0
    calls = Path(env["SBX_FAKE_STATE"], "calls.jsonl").read_text().splitlines()
    assert json.loads(calls[0])["argv"] == ["ls"]
