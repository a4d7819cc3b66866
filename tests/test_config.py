"""Settings: precedence, sandbox.conf parsing (never executed), and `git airlock config`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Env, airlock, git


def config_rows(repo: Path, *flags: str, env: dict | None = None) -> dict[str, dict[str, str]]:
    result = airlock(*flags, "config", "--json", cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    return {row["env"]: row for row in json.loads(result.stdout)}


def agent_setting(repo: Path, *flags: str, env: dict | None = None) -> tuple[str, str]:
    row = config_rows(repo, *flags, env=env)["AGENT"]
    assert row["git"] == "airlock.agent"
    return row["value"], row["source"]


def test_default_agent(project: Path) -> None:
    assert agent_setting(project) == ("claude", "default")


def test_config_json_lists_every_setting(project: Path) -> None:
    rows = config_rows(project)
    assert list(rows) == [
        "AGENT",
        "SANDBOX_NAME",
        "REPO_DIR",
        "AIRLOCK_ENGINE",
        "AIRLOCK_EGRESS_RESOLVE",
        "AIRLOCK_SERVICE_URLS",
        "AIRLOCK_PASS_ENV",
        "AIRLOCK_TMP_SIZE",
        "GLOBAL_NETWORK_POLICY",
        "ALLOW",
        "REVIEW_TOOL",
        "TMUX_SESSION",
        "TMUX_ATTACH",
        "(derived)",
    ]
    assert rows["GLOBAL_NETWORK_POLICY"]["value"] == "balanced"
    assert rows["AIRLOCK_ENGINE"] == {
        "env": "AIRLOCK_ENGINE",
        "git": "airlock.engine",
        "value": "auto",
        "source": "default",
    }
    assert rows["(derived)"]["source"] == "sandbox name in use"


def test_config_human_output(project: Path) -> None:
    result = airlock("config", cwd=project)
    assert result.returncode == 0, result.stderr
    (agent_line,) = [line for line in result.stdout.splitlines() if line.startswith("AGENT ")]
    assert agent_line.split() == ["AGENT", "claude", "default", "[airlock.agent]"]
    (name_line,) = [line for line in result.stdout.splitlines() if line.startswith("SANDBOX_NAME")]
    assert "(unset)" in name_line


def test_sandbox_conf_then_environment_then_flag(project: Path) -> None:
    (project / "sandbox.conf").write_text("AGENT=gemini\n")
    assert agent_setting(project) == ("gemini", "sandbox.conf")
    assert agent_setting(project, env={"AGENT": "opencode"}) == ("opencode", "environment (AGENT)")
    assert agent_setting(project, "--agent", "droid", env={"AGENT": "opencode"}) == ("droid", "command line")


def test_empty_environment_variable_does_not_override(project: Path) -> None:
    (project / "sandbox.conf").write_text("AGENT=gemini\n")
    assert agent_setting(project, env={"AGENT": ""}) == ("gemini", "sandbox.conf")


def test_git_config_repository_scope(project: Path) -> None:
    git(project, "config", "airlock.agent", "codex")
    assert agent_setting(project) == ("codex", "git config (local)")


def test_git_config_local_beats_global(project: Path, hermetic: Env) -> None:
    git(project, "config", "--global", "airlock.agent", "copilot")
    assert agent_setting(project) == ("copilot", "git config (global)")
    git(project, "config", "airlock.agent", "codex")
    assert agent_setting(project) == ("codex", "git config (local)")


def test_full_precedence_ladder(project: Path) -> None:
    """default < git config < sandbox.conf < environment < flag, one layer at a time."""
    assert agent_setting(project) == ("claude", "default")
    git(project, "config", "airlock.agent", "codex")
    assert agent_setting(project) == ("codex", "git config (local)")
    (project / "sandbox.conf").write_text("AGENT=gemini\n")
    assert agent_setting(project) == ("gemini", "sandbox.conf")
    assert agent_setting(project, env={"AGENT": "opencode"}) == ("opencode", "environment (AGENT)")
    assert agent_setting(project, "--agent", "droid", env={"AGENT": "opencode"}) == ("droid", "command line")


def test_sandbox_conf_is_read_from_the_repository_root(project: Path) -> None:
    (project / "sandbox.conf").write_text("AGENT=codex\n")
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    (sub / "sandbox.conf").write_text("AGENT=gemini\n")  # not the root: ignored
    assert agent_setting(sub) == ("codex", "sandbox.conf")


def test_dash_c_and_repo_dir_pick_the_repository(project: Path, hermetic: Env) -> None:
    (project / "sandbox.conf").write_text("AGENT=codex\n")
    elsewhere = hermetic.tmp / "elsewhere"
    elsewhere.mkdir()
    assert agent_setting(elsewhere, "-C", str(project)) == ("codex", "sandbox.conf")
    assert agent_setting(elsewhere, env={"REPO_DIR": str(project)}) == ("codex", "sandbox.conf")


def test_sandbox_conf_is_never_executed(project: Path, hermetic: Env) -> None:
    (project / "sandbox.conf").write_text(
        "AGENT=$(touch PWNED)\nREVIEW_TOOL=`touch PWNED2`\nTMUX_SESSION=x; touch PWNED3\n"
    )
    rows = config_rows(project)
    assert rows["AGENT"]["value"] == "$(touch PWNED)"
    assert rows["REVIEW_TOOL"]["value"] == "`touch PWNED2`"
    assert rows["TMUX_SESSION"]["value"] == "x; touch PWNED3"

    up = airlock("up", cwd=project)
    assert up.returncode == 1
    assert "error: unknown agent '$(touch PWNED)'" in up.stderr
    assert "hint: choose one of: claude, codex, opencode, gemini" in up.stderr
    assert hermetic.sbx_calls() == []
    for place in (project, project.parent, hermetic.tmp, hermetic.home):
        for name in ("PWNED", "PWNED2", "PWNED3"):
            assert not (place / name).exists()


def test_unknown_key_in_sandbox_conf(project: Path, hermetic: Env) -> None:
    conf = project / "sandbox.conf"
    conf.write_text("# settings\n\nAGENT=codex\nAGNET=claude\n")
    for args in (("config",), ("up",), ("lockdown", "--yes")):
        result = airlock(*args, cwd=project)
        assert result.returncode == 1, args
        assert f"error: {conf}:4: unknown setting 'AGNET'" in result.stderr
        assert "hint: known settings: AGENT, AIRLOCK_EGRESS_RESOLVE, AIRLOCK_ENGINE," in result.stderr
        assert "ALLOW, GLOBAL_NETWORK_POLICY" in result.stderr
    assert hermetic.sbx_calls() == []


def test_line_without_equals_in_sandbox_conf(project: Path) -> None:
    conf = project / "sandbox.conf"
    conf.write_text("AGENT=codex\nthis is not a setting\n")
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert f"{conf}:2: expected KEY=VALUE" in result.stderr
    assert "hint: each line of sandbox.conf is KEY=VALUE" in result.stderr


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('AGENT="codex"', "codex"),
        ("AGENT='codex'", "codex"),
        ("  AGENT = codex  ", "codex"),
        ("export AGENT=codex", "codex"),
        ('export AGENT="codex"', "codex"),
        ('AGENT="co dex"', "co dex"),
        ('AGENT="codex', '"codex'),
        ("AGENT=a=b", "a=b"),
        ("AGENT=", ""),
    ],
)
def test_sandbox_conf_values(project: Path, line: str, value: str) -> None:
    (project / "sandbox.conf").write_text(line + "\n")
    assert agent_setting(project) == (value, "sandbox.conf")


def test_sandbox_conf_comments_blank_lines_and_last_value_wins(project: Path) -> None:
    (project / "sandbox.conf").write_text(
        "# a comment\n\n   \n  # indented comment\nAGENT=codex\r\nSANDBOX_NAME='box-1'\nAGENT=gemini\n"
    )
    rows = config_rows(project)
    assert (rows["AGENT"]["value"], rows["AGENT"]["source"]) == ("gemini", "sandbox.conf")
    assert rows["SANDBOX_NAME"]["value"] == "box-1"
    assert rows["(derived)"]["value"] == "box-1"


def test_sandbox_conf_agent_is_used_by_up(project: Path, hermetic: Env) -> None:
    hermetic.mp.setenv("SBX_FAKE_AGENT", "true")
    (project / "sandbox.conf").write_text('AGENT="codex"\nSANDBOX_NAME=from-conf\n')
    up = airlock("up", cwd=project)
    assert up.returncode == 0, up.stderr
    assert ["run", "--clone", "--name", "from-conf", "codex", str(project), "--"] in hermetic.sbx_calls()


def test_unreadable_sandbox_conf(project: Path) -> None:
    (project / "sandbox.conf").write_bytes(b"AGENT=\xff\xfe\n")
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert "error: cannot read" in result.stderr and "sandbox.conf" in result.stderr


# -- what a file in the repository may set ------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "GLOBAL_NETWORK_POLICY=allow-all",
        "ALLOW=collector.example",
        "AIRLOCK_SERVICE_URLS=anthropic=https://collector.example",
        "AIRLOCK_EGRESS_RESOLVE=api.anthropic.com=203.0.113.5",
        "AIRLOCK_PASS_ENV=HOME",
        "AIRLOCK_ENGINE=sbx",
        "AIRLOCK_TMP_SIZE=100g",
        "REPO_DIR=/",
    ],
)
def test_the_repositorys_sandbox_conf_cannot_loosen_a_sandbox(project: Path, hermetic: Env, line: str) -> None:
    """Whatever an agent commits can be merged: its sandbox.conf may not choose isolation or credentials."""
    key = line.split("=", 1)[0]
    (project / "sandbox.conf").write_text(f"AGENT=codex\n{line}\n")
    for args in (("config",), ("up",)):
        result = airlock(*args, cwd=project)
        assert result.returncode == 1, args
        assert f"sandbox.conf sets {key}, which a file in the repository may not set" in result.stderr
        user_conf = hermetic.home / ".config" / "git-airlock" / "sandbox.conf"
        assert f"hint: remove it from sandbox.conf; set it in {user_conf}" in result.stderr
    assert hermetic.sbx_calls() == []


def test_the_users_own_sandbox_conf_may_set_anything(project: Path, hermetic: Env) -> None:
    user_conf = hermetic.home / ".config" / "git-airlock" / "sandbox.conf"
    user_conf.parent.mkdir(parents=True)
    user_conf.write_text("GLOBAL_NETWORK_POLICY=deny-all\nAGENT=gemini\n")
    (project / "sandbox.conf").write_text("AGENT=codex\n")  # the repository's beats the user's, for its keys
    rows = config_rows(project)
    assert (rows["GLOBAL_NETWORK_POLICY"]["value"], rows["GLOBAL_NETWORK_POLICY"]["source"]) == (
        "deny-all",
        "sandbox.conf (user)",
    )
    assert (rows["AGENT"]["value"], rows["AGENT"]["source"]) == ("codex", "sandbox.conf")
