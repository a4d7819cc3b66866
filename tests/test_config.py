"""Settings: precedence, sandbox.conf parsing (never executed), and `git airlock config`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Env, airlock, data_dir, git


def config_rows(repo: Path, *flags: str, env: dict | None = None) -> dict[str, dict[str, str]]:
    result = airlock(*flags, "config", "--json", cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    return {row["env"] or row["git"]: row for row in json.loads(result.stdout)}


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
        "USE_TMUX",
        "SEED_CONFIG",
        "SEED_PATHS",
        "AIRLOCK_KEEP_AGENT_STATE",
        "FETCH_SUBMODULES",
        "PR_BRANCH",
        "AIRLOCK_SAVE_MAX_FILE_SIZE",
        "AIRLOCK_MERGE_COMMIT",
        "airlock.requireReview",
        "airlock.prePush",
        "airlock.pushNotes",
        "airlock.preset.<name>",
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
    for args in (("config",), ("up",)):
        refused = airlock(*args, cwd=project)
        assert refused.returncode == 1
        assert "sandbox.conf:1: AGENT: '$' would be expanded by bash; sandbox.conf expands nothing" in refused.stderr
        assert "hint: sandbox.conf is read, never run" in refused.stderr
    for line, problem in (
        ("REVIEW_TOOL=`touch PWNED2`", "'`' would be expanded by bash"),
        ("TMUX_SESSION=x; touch PWNED3", "';' would end the assignment in bash"),
    ):
        (project / "sandbox.conf").write_text(line + "\n")
        assert problem in airlock("up", cwd=project).stderr
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
        assert "ALLOW, FETCH_SUBMODULES, GLOBAL_NETWORK_POLICY" in result.stderr
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
        ("AGENT=a=b", "a=b"),
        ("AGENT=", ""),
        ("AGENT=codex  # the one with the fast model", "codex"),
        ('AGENT="co dex" # quoted, then a comment', "co dex"),
        ("AGENT=co#dex", "co#dex"),
        ("AGENT='it''s'", "its"),
        (r"AGENT=co\ dex", "co dex"),
        (r'AGENT="say \"hi\""', 'say "hi"'),
    ],
)
def test_sandbox_conf_values(project: Path, line: str, value: str) -> None:
    (project / "sandbox.conf").write_text(line + "\n")
    assert agent_setting(project) == (value, "sandbox.conf")


def test_sandbox_conf_comments_and_blank_lines(project: Path) -> None:
    (project / "sandbox.conf").write_text(
        "# a comment\n\n   \n  # indented comment\nAGENT=codex\r\nSANDBOX_NAME='box-1'\n"
    )
    rows = config_rows(project)
    assert (rows["AGENT"]["value"], rows["AGENT"]["source"]) == ("codex", "sandbox.conf")
    assert rows["SANDBOX_NAME"]["value"] == "box-1"
    assert rows["(derived)"]["value"] == "box-1"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("AGENT=codex\nAGENT=gemini\n", "sandbox.conf:2: AGENT is set twice (first on line 1)"),
        ('AGENT="codex\n', """sandbox.conf:1: AGENT: a quote (") is never closed"""),
        ("AGENT=co dex\n", "sandbox.conf:1: AGENT: 'dex' follows the value; quote a value that has spaces"),
        ('AGENT="$HOME"\n', "sandbox.conf:1: AGENT: '$' would be expanded by bash"),
    ],
)
def test_sandbox_conf_lines_bash_would_read_otherwise_are_refused(project: Path, text: str, problem: str) -> None:
    (project / "sandbox.conf").write_text(text)
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert problem in result.stderr
    assert "hint: " in result.stderr


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


@pytest.mark.parametrize("where", ["environment", "sandbox.conf", "git config"])
def test_a_switch_that_is_neither_true_nor_false_is_refused(project: Path, where: str) -> None:
    env = {"TMUX_ATTACH": "maybe"} if where == "environment" else {}
    if where == "sandbox.conf":
        (project / "sandbox.conf").write_text("TMUX_ATTACH=maybe\n")
    if where == "git config":
        git(project, "config", "airlock.tmuxAttach", "maybe")
    result = airlock("config", cwd=project, env=env)
    assert result.returncode == 1
    assert "error: TMUX_ATTACH is 'maybe'" in result.stderr and "neither true nor false" in result.stderr
    assert "hint: use true or false" in result.stderr


def test_code_airlock_settings_keep_their_meaning(project: Path, hermetic: Env) -> None:
    """USE_TMUX, SEED_CONFIG/SEED_USER_CONFIG, SEED_PATHS, PR_BRANCH and DRY_RUN, as code-airlock users set them."""
    (hermetic.home / ".claude").mkdir()
    (hermetic.home / ".claude" / "CLAUDE.md").write_text("be brief\n")
    (hermetic.home / "notes").mkdir()
    (hermetic.home / "notes" / "style.md").write_text("tabs\n")
    (hermetic.home / "notes" / "token.txt").write_text("secret\n")
    env = {"USE_TMUX": "1", "SEED_USER_CONFIG": "yes", "SEED_PATHS": "notes, ~/notes/style.md", "DRY_RUN": "1"}
    dry = airlock("--engine", "bwrap", "--name", "box", "up", cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "tmux new-session" in dry.stdout  # USE_TMUX is --tmux
    seeded = [line for line in dry.stdout.splitlines() if line.startswith("# copy ")]
    assert any("/.claude/CLAUDE.md" in line for line in seeded)  # SEED_USER_CONFIG is --seed-config
    assert any("/notes/style.md" in line for line in seeded)
    assert not any("token.txt" in line for line in seeded)  # a credential-like name stays home
    assert not data_dir(hermetic, "box").exists()  # DRY_RUN is --dry-run

    alias = airlock("--engine", "bwrap", "--dry-run", "--seed-user-config", "up", cwd=project)
    assert alias.returncode == 0 and any("/.claude/CLAUDE.md" in line for line in alias.stdout.splitlines())

    rows = config_rows(project, env={"PR_BRANCH": "agent/work", "SEED_USER_CONFIG": "1"})
    assert (rows["PR_BRANCH"]["value"], rows["PR_BRANCH"]["source"]) == ("agent/work", "environment (PR_BRANCH)")
    assert rows["SEED_CONFIG"]["source"] == "environment (SEED_USER_CONFIG)"


@pytest.mark.parametrize("key", ["SEED_PATHS", "SEED_CONFIG", "PR_BRANCH", "FETCH_SUBMODULES"])
def test_code_airlock_settings_that_reach_your_files_never_come_from_the_repository(project: Path, key: str) -> None:
    (project / "sandbox.conf").write_text(f"{key}=x\n")
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert f"sets {key}, which a file in the repository may not set" in result.stderr


def test_settings_only_git_config_holds_are_shown_with_their_source(project: Path) -> None:
    git(project, "config", "airlock.prePush", "block")
    git(project, "config", "airlock.requireReview", "false")
    git(project, "config", "airlock.preset.docs", "docs.example.org,*.cdn.example")
    rows = config_rows(project)
    assert rows["airlock.prePush"] == {
        "env": None,
        "git": "airlock.prePush",
        "value": "block",
        "source": "git config (local)",
    }
    assert rows["airlock.requireReview"]["value"] == "false"
    assert rows["airlock.preset.<name>"]["value"] == "docs=docs.example.org,*.cdn.example"
    assert rows["airlock.preset.<name>"]["source"] == "git config (local)"


@pytest.mark.parametrize("key", ["PRE_PUSH", "REQUIRE_REVIEW", "PRE_PUSH_MODE"])
def test_review_and_push_settings_never_come_from_a_repository_file(project: Path, key: str) -> None:
    (project / "sandbox.conf").write_text(f"{key}=off\n")
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert f"unknown setting {key!r}" in result.stderr


def test_review_and_push_settings_ignore_the_environment(project: Path) -> None:
    rows = config_rows(project, env={"PRE_PUSH": "off", "AIRLOCK_PRE_PUSH": "off", "REQUIRE_REVIEW": "false"})
    assert (rows["airlock.prePush"]["value"], rows["airlock.prePush"]["source"]) == ("warn", "default")
    assert rows["airlock.requireReview"]["value"] == "true"


def test_an_unknown_pre_push_mode_is_an_error_naming_its_source(project: Path) -> None:
    git(project, "config", "airlock.prePush", "loud")
    result = airlock("config", cwd=project)
    assert result.returncode == 1
    assert "error: unknown airlock.prePush value 'loud' (from git config (local))" in result.stderr
    assert "hint: use one of: warn, block, off" in result.stderr


def test_a_bad_preset_rule_is_refused_where_it_is_used(project: Path) -> None:
    git(project, "config", "airlock.preset.wide", "*")
    result = airlock("presets", cwd=project)
    assert result.returncode == 1
    assert "would allow every host" in result.stderr
