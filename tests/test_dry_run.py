"""`--dry-run` prints the exact commands and runs nothing, even with no sbx installed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import Env, airlock, git, snapshot
from git_airlock import capture, tmux
from git_airlock.process import quote_argv

SAVE_MESSAGE = "WIP: what sandbox box left uncommitted\n\nSaved by git-airlock; the agent did not commit it."

FETCH_SAFETY = (
    "-c core.hooksPath=/dev/null -c core.fsmonitor=false -c fetch.fsckObjects=true "
    "-c transfer.fsckObjects=true -c protocol.allow=never -c protocol.git.allow=always "
    "-c protocol.file.allow=always -c submodule.recurse=false -c fetch.recurseSubmodules=false"
)


def fetch_line(project: Path, name: str) -> str:
    return (
        f"git {FETCH_SAFETY} -C {shlex.quote(str(project))} fetch --no-tags --no-write-fetch-head --quiet "
        f"sandbox-{name} '+refs/heads/*:refs/remotes/sandbox-{name}/*' '+refs/heads/*:refs/sandboxes/{name}/*'"
    )


def lines(output: str) -> list[str]:
    return output.strip().splitlines()


@pytest.fixture
def dry(project: Path, hermetic: Env, no_sbx) -> Path:
    hermetic.mp.setenv("SANDBOX_NAME", "box")
    return project


def assert_nothing_ran(project: Path, hermetic: Env, before: dict) -> None:
    assert not hermetic.sbx_state.exists(), "the sbx emulator must not have been called"
    assert snapshot(project) == before
    assert git(project, "remote") == ""


EXPECTED = {
    ("up", "--", "--model", "opus"): [
        "sbx ls --json",
        "sbx policy init balanced",
        "sbx settings get ssh.agentForwardingEnabled",
        "sbx secret ls",
        "# move refs an earlier sandbox named box left to refs/sandboxes/box@<time>/",
        "git -C {repo} update-ref -m 'git-airlock: sandbox base' refs/airlock/base/box HEAD",
        "git -C {repo} config airlocksandbox.box.agent claude",
        "git -C {repo} config airlocksandbox.box.engine sbx",
        "git -C {repo} config airlocksandbox.box.policy balanced",
        "git -C {repo} config airlocksandbox.box.presets ''",
        "sbx run --clone --name box claude {repo} -- --model opus",
    ],
    ("run", "fix the tests"): [
        "sbx ls --json",
        "sbx policy init balanced",
        "sbx settings get ssh.agentForwardingEnabled",
        "sbx secret ls",
        "# move refs an earlier sandbox named box left to refs/sandboxes/box@<time>/",
        "git -C {repo} update-ref -m 'git-airlock: sandbox base' refs/airlock/base/box HEAD",
        "git -C {repo} config airlocksandbox.box.agent claude",
        "git -C {repo} config airlocksandbox.box.engine sbx",
        "git -C {repo} config airlocksandbox.box.policy balanced",
        "git -C {repo} config airlocksandbox.box.presets ''",
        "sbx run --clone --name box claude {repo} -- --dangerously-skip-permissions -p 'fix the tests'",
    ],
    ("shell",): ["sbx ls --json", "sbx exec -it box bash"],
    ("stop",): ["sbx ls --json", "sbx stop box"],
    ("fetch",): ["sbx ls --json", "sbx exec box true", "{fetch}"],
    ("diff",): [
        "sbx ls --json",
        "sbx exec box true",
        "{fetch}",
        "# in-process (libgit2): git diff main...sandbox-box/main",
    ],
    ("merge",): [
        "sbx ls --json",
        "sbx exec box true",
        "{fetch}",
        "# in-process (libgit2): git merge sandbox-box/main into main",
        "git -C {repo} update-ref refs/airlock/reviewed/box/main refs/remotes/sandbox-box/main",
    ],
    ("rm",): [
        "sbx ls --json",
        "sbx exec box true",
        "{fetch}",
        "{save}",
        f"git {FETCH_SAFETY} -C {{repo}} fetch --no-tags --no-write-fetch-head --quiet sandbox-box "
        "'+refs/airlock-capture/*:refs/airlock/wip/box/<time>/*'",
        "sbx rm --force box",
        "tmux kill-session -t =git-airlock-box",
    ],
    ("net",): ["sbx policy log box"],
    ("unlock",): [
        "sbx policy ls box --json",
        "# sbx policy rm network --sandbox box --resource <the rules scoped to box that you can edit>",
        "# (unlock reads the rules first, so a real run names them)",
    ],
    ("unlock", "--global"): ["sbx policy reset --force", "sbx policy init balanced"],
    ("attach",): ["tmux attach-session -t =git-airlock-box"],
    ("status",): [
        "sbx ls --json",
        "# git rev-list --count for each refs/remotes/sandbox-box/* not in the base",
    ],
}


@pytest.mark.parametrize("args", list(EXPECTED), ids=lambda a: a[0])
def test_dry_run_prints_exact_commands(dry: Path, hermetic: Env, args: tuple[str, ...]) -> None:
    before = snapshot(dry)
    result = airlock("--dry-run", *args, cwd=dry)
    assert result.returncode == 0, result.stderr
    save = quote_argv(["sbx", "exec", "box", "sh", "-c", capture.SCRIPT, "sh", "104857600", "0", SAVE_MESSAGE])
    expected = [
        line.format(repo=shlex.quote(str(dry)), fetch=fetch_line(dry, "box"), save=save) for line in EXPECTED[args]
    ]
    shown = re.sub(r"refs/airlock/wip/box/[0-9]{8}T[0-9]{6}Z/", "refs/airlock/wip/box/<time>/", result.stdout)
    assert lines(shown) == lines("\n".join(expected))
    assert_nothing_ran(dry, hermetic, before)


def test_dry_run_review_shows_the_difftool(dry: Path, hermetic: Env) -> None:
    git(dry, "config", "difftool.scripted.cmd", 'sh -c "exit 0" "$LOCAL" "$REMOTE"')
    result = airlock("--dry-run", "review", cwd=dry, env={"REVIEW_TOOL": "scripted"})
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-3:] == [
        "# in a scratch repository sharing this one's objects (no filters, hooks or textconv), "
        "where difftool.git-airlock-review.cmd runs scripted and records its exit status:",
        "GIT_AIRLOCK_DIFFTOOL=scripted git difftool --dir-diff --no-prompt --trust-exit-code "
        "--tool=git-airlock-review main refs/remotes/sandbox-box/main",
        f"git -C {shlex.quote(str(dry))} update-ref refs/airlock/reviewed/box/main refs/remotes/sandbox-box/main",
    ]


def test_dry_run_review_without_a_usable_default_shows_the_terminal_review(dry: Path, hermetic: Env) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "VSCODE_IPC_HOOK_CLI"):
        hermetic.mp.delenv(name, raising=False)
    result = airlock("--dry-run", "review", cwd=dry)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-3:] == [
        "# the default review tool, vscode, cannot start here: `code` (git-airlock's command for vscode) is not "
        "installed or not on PATH; showing the commits in the terminal instead (choose a tool with --tool or "
        "REVIEW_TOOL)",
        "# in-process (libgit2): each commit of main..sandbox-box/main with its patch, in the pager",
        f"git -C {shlex.quote(str(dry))} update-ref refs/airlock/reviewed/box/main refs/remotes/sandbox-box/main",
    ]


def test_dry_run_pr_shows_push(dry: Path, hermetic: Env) -> None:
    result = airlock("--dry-run", "pr", "main", "topic", cwd=dry)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-2:] == [
        "# in-process (libgit2): git branch --force topic sandbox-box/main",
        f"git -C {shlex.quote(str(dry))} push --set-upstream origin refs/heads/topic:refs/heads/topic",
    ]
    assert git(dry, "branch", "--list", "topic") == ""


def test_dry_run_lockdown_shows_allowlist(dry: Path, hermetic: Env) -> None:
    result = airlock("--dry-run", "lockdown", cwd=dry, env={"ALLOW": "example.com,*.npmjs.org:443"})
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "sbx policy init balanced",
        "sbx policy ls box --json",
        "# sbx policy rm network --sandbox box --resource <the rules scoped to box that you can edit>",
        "# sbx policy deny network --sandbox box <every allowed resource above outside ALLOW>",
        "sbx policy allow network --sandbox box 'example.com,*.npmjs.org:443'",
        "# (lock down reads the rules first, so a real run names them)",
    ]
    machine_wide = airlock("--dry-run", "lockdown", "--global", cwd=dry, env={"ALLOW": "example.com,*.npmjs.org:443"})
    assert lines(machine_wide.stdout) == [
        "sbx policy reset --force",
        "sbx policy init deny-all",
        "sbx policy allow network --sandbox box 'example.com,*.npmjs.org:443'",
    ]


def test_dry_run_tmux_detached(dry: Path, hermetic: Env) -> None:
    before = snapshot(dry)
    result = airlock("--dry-run", "--tmux-detached", "up", cwd=dry)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-1] == (
        f"tmux new-session -d -s git-airlock-box -c {shlex.quote(str(dry))} -- "
        f"sh -c {shlex.quote(tmux.AFTERWARDS)} agent sbx run --clone --name box claude {shlex.quote(str(dry))} --"
    )
    assert_nothing_ran(dry, hermetic, before)


def test_dry_run_tmux_attaches(dry: Path, hermetic: Env) -> None:
    result = airlock("--dry-run", "--tmux", "up", cwd=dry)
    assert lines(result.stdout)[-1] == "tmux attach-session -t =git-airlock-box"


def test_dry_run_init_writes_nothing(dry: Path, hermetic: Env) -> None:
    result = airlock("--dry-run", "init", cwd=dry)
    assert result.returncode == 0
    assert lines(result.stdout) == [f"# write {dry / 'AGENTS.md'}"]
    assert not (dry / "AGENTS.md").exists()


def test_dry_run_up_outside_a_repo(tmp_path: Path, hermetic: Env, no_sbx) -> None:
    folder = tmp_path / "fresh"
    folder.mkdir()
    result = airlock("--dry-run", "up", cwd=folder)
    assert result.returncode == 0, result.stderr
    out = lines(result.stdout)
    assert out[0] == f"git init --quiet {shlex.quote(str(folder))}"
    assert out[-1].startswith("sbx run --clone --name fresh-")
    assert not (folder / ".git").exists()


def test_real_run_without_sbx_is_a_clear_error(project: Path, hermetic: Env, no_sbx) -> None:
    result = airlock("up", cwd=project)
    assert result.returncode == 1
    assert "error: no sandbox engine is installed: neither `sbx` (Docker Sandboxes) nor `bwrap`" in result.stderr
    assert "hint: install Docker Sandboxes" in result.stderr


def test_pr_branch_names_the_branch_pr_pushes(dry: Path, hermetic: Env) -> None:
    """code-airlock's PR_BRANCH: the branch when none is given on the command line."""
    result = airlock("--dry-run", "pr", "main", cwd=dry, env={"PR_BRANCH": "agent/work"})
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-2:] == [
        "# in-process (libgit2): git branch --force agent/work sandbox-box/main",
        f"git -C {shlex.quote(str(dry))} push --set-upstream origin refs/heads/agent/work:refs/heads/agent/work",
    ]
