"""Setting up: init, completion, help, unknown commands, --seed-config, and `up` in a new folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import Env, airlock, git, write_agent
from git_airlock import __version__
from git_airlock.cli import COMMANDS

# -- init --------------------------------------------------------------------------------------


def test_init_writes_agents_md_once(project: Path) -> None:
    first = airlock("init", cwd=project)
    assert first.returncode == 0, first.stderr
    agents_md = project / "AGENTS.md"
    text = agents_md.read_text()
    assert text.startswith("# AGENTS.md\n")
    assert "git airlock review" in text
    assert f"wrote {project}" in first.stderr or "wrote " in first.stderr

    agents_md.write_text("# my own instructions\n")
    second = airlock("init", cwd=project)
    assert second.returncode == 0, second.stderr
    assert "already exists; left unchanged" in second.stderr
    assert agents_md.read_text() == "# my own instructions\n"


def test_init_from_a_subdirectory_writes_at_the_root(project: Path) -> None:
    sub = project / "pkg" / "mod"
    sub.mkdir(parents=True)
    assert airlock("init", cwd=sub).returncode == 0
    assert (project / "AGENTS.md").is_file()
    assert not (sub / "AGENTS.md").exists()


def test_init_leaves_a_dangling_symlink_alone(project: Path) -> None:
    link = project / "AGENTS.md"
    link.symlink_to(project / "docs" / "missing.md")
    result = airlock("init", cwd=project)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and not link.exists()
    assert not (project / "docs").exists(), "init must not write through a symlink"


def test_init_dry_run_writes_nothing(project: Path) -> None:
    result = airlock("--dry-run", "init", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"# write {project / 'AGENTS.md'}"
    assert not (project / "AGENTS.md").exists()


def test_init_outside_a_repository(hermetic: Env) -> None:
    plain = hermetic.tmp / "plain"
    plain.mkdir()
    result = airlock("init", cwd=plain)
    assert result.returncode == 1
    assert "error: not a git repository" in result.stderr and "hint:" in result.stderr
    assert not (plain / "AGENTS.md").exists()


# -- completion --------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(project: Path, shell: str) -> None:
    result = airlock("completion", shell, cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "_GIT_AIRLOCK_COMPLETE" in result.stdout
    if shell == "bash":
        assert "_git_airlock ()" in result.stdout


def test_completion_bash_works_outside_a_repository(hermetic: Env) -> None:
    result = airlock("completion", "bash", cwd=hermetic.tmp)
    assert result.returncode == 0 and "_git_airlock" in result.stdout


def test_completion_unknown_shell(project: Path) -> None:
    result = airlock("completion", "tcsh", cwd=project)
    assert result.returncode == 2
    assert re.search(r"^error: .*'tcsh'", result.stderr, re.M), result.stderr
    assert "bash" in result.stderr and "fish" in result.stderr
    assert result.stdout == ""


# -- help --------------------------------------------------------------------------------------


def test_help_lists_every_command(hermetic: Env) -> None:
    for args in (("-h",), ("help",)):
        result = airlock(*args, cwd=hermetic.tmp)
        assert result.returncode == 0, result.stderr
        assert "Usage: git airlock" in result.stdout
        listed = re.findall(r"^  (\S+)\s{2,}", result.stdout.split("Commands:")[1], re.M)
        assert listed == list(COMMANDS)


def test_help_for_one_command(hermetic: Env) -> None:
    result = airlock("help", "merge", cwd=hermetic.tmp)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: git airlock merge")
    assert "merge" in result.stdout.lower()


def test_help_for_an_unknown_command(hermetic: Env) -> None:
    result = airlock("help", "nosuch", cwd=hermetic.tmp)
    assert result.returncode == 1
    assert "error: unknown command 'nosuch'" in result.stderr
    assert "hint: `git airlock -h` lists the commands" in result.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(hermetic: Env, command: str) -> None:
    """`-h` works for every command, in or out of a repository, and has no side effects."""
    plain = hermetic.tmp / "plain"
    plain.mkdir()
    for flag in ("-h", "--help"):
        result = airlock(command, flag, cwd=plain)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"Usage: git airlock {command}"), result.stdout
    via_help = airlock("help", command, cwd=plain)
    assert via_help.returncode == 0, via_help.stderr
    assert via_help.stdout.startswith(f"Usage: git airlock {command}")
    assert hermetic.sbx_calls() == []
    assert not (plain / ".git").exists()


def test_version(hermetic: Env) -> None:
    result = airlock("--version", cwd=hermetic.tmp)
    assert result.returncode == 0
    assert result.stdout.strip() == f"git-airlock, version {__version__}"


# -- unknown commands --------------------------------------------------------------------------


@pytest.mark.parametrize(("typo", "meant"), [("merg", "merge"), ("lockdwn", "lockdown"), ("stauts", "status")])
def test_unknown_command_suggests(project: Path, hermetic: Env, typo: str, meant: str) -> None:
    result = airlock(typo, cwd=project)
    assert result.returncode == 2
    assert f"error: unknown command '{typo}'" in result.stderr
    assert f"hint: did you mean `git airlock {meant}`?" in result.stderr
    assert hermetic.sbx_calls() == []


def test_unknown_command_without_a_close_match(project: Path) -> None:
    result = airlock("xyzzy", cwd=project)
    assert result.returncode == 2
    assert "error: unknown command 'xyzzy'" in result.stderr
    assert "hint: `git airlock -h` lists the commands" in result.stderr


# -- --seed-config -----------------------------------------------------------------------------


def test_seed_config_dry_run_copies_only_instruction_files(project: Path, hermetic: Env) -> None:
    claude = hermetic.home / ".claude"
    files = {
        "CLAUDE.md": "be careful\n",
        "commands/review.md": "review it\n",
        ".credentials.json": '{"token": "secret"}\n',
        "commands/session-notes.md": "private\n",
        "statsig/x": "telemetry\n",
        "agents/helper.md": "helper\n",
        "agents/oauth-token.txt": "secret\n",
        "commands/.hidden/x.md": "hidden dir\n",
        "settings.json": "{}\n",
    }
    for relative, text in files.items():
        path = claude / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    result = airlock("--dry-run", "--seed-config", "up", cwd=project)
    assert result.returncode == 0, result.stderr
    name = next(line.split()[4] for line in result.stdout.splitlines() if line.startswith("sbx create"))
    copies = [line for line in result.stdout.splitlines() if line.startswith("sbx cp ")]
    assert sorted(copies) == sorted(
        [
            f"sbx cp {claude / 'CLAUDE.md'} {name}:/home/agent/.claude/CLAUDE.md",
            f"sbx cp {claude / 'commands/review.md'} {name}:/home/agent/.claude/commands/review.md",
            f"sbx cp {claude / 'agents/helper.md'} {name}:/home/agent/.claude/agents/helper.md",
        ]
    )
    for secret in ("credentials", "session-notes", "statsig", "oauth-token", ".hidden", "settings.json"):
        assert secret not in result.stdout
    assert "seeding 3 instruction file(s)" in result.stderr

    lines = result.stdout.splitlines()
    assert lines.index(next(line for line in lines if line.startswith("sbx create --clone"))) < lines.index(
        copies[0]
    ), "the sandbox exists before files are copied in"
    assert lines[-1] == f"sbx run {name} --"
    assert hermetic.sbx_calls() == [], "a dry run runs nothing"


def test_seed_config_for_real(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "cat /dev/null\n")
    (hermetic.home / ".claude" / "commands").mkdir(parents=True)
    (hermetic.home / ".claude" / "CLAUDE.md").write_text("be careful\n")
    (hermetic.home / ".claude" / ".credentials.json").write_text("secret\n")
    result = airlock("--seed-config", "up", cwd=project)
    assert result.returncode == 0, result.stderr
    name = next(c[3] for c in hermetic.sbx_calls() if c[:2] == ["create", "--clone"])
    root = hermetic.sbx_state / "sandboxes" / name / "root"
    assert (root / "home/agent/.claude/CLAUDE.md").read_text() == "be careful\n"
    assert not (root / "home/agent/.claude/.credentials.json").exists()
    assert ["run", name, "--"] in hermetic.sbx_calls()


def test_without_seed_config_nothing_is_copied(project: Path, hermetic: Env) -> None:
    (hermetic.home / ".claude").mkdir()
    (hermetic.home / ".claude" / "CLAUDE.md").write_text("x\n")
    result = airlock("--dry-run", "up", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "sbx cp" not in result.stdout
    assert any(line.startswith("sbx run --clone --name ") for line in result.stdout.splitlines())


# -- up in a folder that is not a repository yet ----------------------------------------------


def test_up_outside_a_repository_without_yes_is_refused(hermetic: Env) -> None:
    folder = hermetic.tmp / "new-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("draft\n")
    result = airlock("up", cwd=folder)
    assert result.returncode == 1
    assert f"error: not a git repository: {folder}" in result.stderr
    assert re.search(r"^hint: .*--yes", result.stderr, re.M)
    assert not (folder / ".git").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert hermetic.sbx_calls() == []


def test_up_outside_a_repository_dry_run_shows_git_init(hermetic: Env) -> None:
    folder = hermetic.tmp / "new-project"
    folder.mkdir()
    result = airlock("--dry-run", "up", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"git init --quiet {folder}"
    assert any(line.startswith("sbx run --clone") for line in result.stdout.splitlines())
    assert not (folder / ".git").exists()
    assert hermetic.sbx_calls() == []


def test_up_yes_outside_a_repository_inits_and_starts(hermetic: Env) -> None:
    write_agent(hermetic, 'printf "%s\\n" "$@" > "$AGENT_LOG"\n')
    folder = hermetic.tmp / "new-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("draft\n")
    result = airlock("up", "--yes", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert (folder / ".git").is_dir()
    assert git(folder, "rev-parse", "--show-toplevel").strip() == str(folder.resolve())
    assert (folder / "notes.txt").read_text() == "draft\n"

    from git_airlock.naming import default_sandbox_name

    name = default_sandbox_name(str(folder.resolve()))
    assert ["run", "--clone", "--name", name, "claude", str(folder), "--"] in hermetic.sbx_calls()
    assert name in hermetic.sbx_state_json()["sandboxes"]
    assert (hermetic.tmp / "agent-args.txt").exists(), "the agent ran"
    status = airlock("status", cwd=folder)
    assert status.returncode == 0, status.stderr
    assert f"sandbox:  {name} (running" in status.stdout
