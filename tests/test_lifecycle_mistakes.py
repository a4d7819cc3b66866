"""Ordinary mistakes and races around a sandbox's life: each leaves a usable state and a clear message.

Real git, real bwrap sandboxes (the shell agent stands in for an agent). Failures during `up` are
made real too: a `git` first on PATH that fails, or stops and waits, at one chosen moment.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from conftest import Env, airlock, data_dir, git, run_in_sandbox, sandbox_file

COMMIT = "echo hi > a.txt && git add a.txt && git commit -q -m 'first file'"


def leftovers(project: Path, hermetic: Env, name: str, tmp: Path, ledger: bool = True) -> list[str]:
    """Everything a sandbox called ``name`` would own, that exists (with ``ledger``: its base too, which
    only `rm` keeps, as the review ledger's record)."""
    found = []
    if data_dir(hermetic, name).exists():
        found.append(str(data_dir(hermetic, name)))
    found += [f"remote {remote}" for remote in git(project, "remote").split() if remote == f"sandbox-{name}"]
    config = git(project, "config", "--get-regexp", rf"^remote\.sandbox-{name}\.", check=False)
    found += [f"config {line}" for line in config.splitlines()]
    if ledger:
        found += git(project, "for-each-ref", "--format=%(refname)", f"refs/airlock/base/{name}").split()
    gates = tmp / f"git-airlock-{os.getuid()}"
    found += [str(path) for path in gates.iterdir()] if gates.is_dir() else []
    return found


@pytest.fixture
def tmpdir_env(hermetic: Env) -> Iterator[Path]:
    """A temporary directory of the test's own, where the egress gate keeps its folders (short: the
    gate's socket path must fit a Unix socket address)."""
    folder = Path(tempfile.mkdtemp(prefix="ga-"))
    hermetic.mp.setenv("TMPDIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# -- a repository with no commits, a plain folder ---------------------------------------------------


def test_an_empty_repository_works_from_up_to_merge(tmp_path: Path, hermetic: Env) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "notes.txt").write_text("mine, untracked\n")

    result = run_in_sandbox(repo, "box", f"git symbolic-ref HEAD > branch.txt; {COMMIT}")
    assert result.returncode == 0, result.stderr
    assert sandbox_file(hermetic, "box", "branch.txt").read_text() == "refs/heads/main\n"  # the host's unborn branch

    assert airlock("--engine", "bwrap", "--name", "box", "fetch", cwd=repo).returncode == 0
    log = airlock("--engine", "bwrap", "--name", "box", "log", cwd=repo)
    assert "1 unreviewed commit(s)" in log.stdout and "first file" in log.stdout
    diff = airlock("--engine", "bwrap", "--name", "box", "diff", cwd=repo)
    assert diff.returncode == 0 and "+hi" in diff.stdout
    assert airlock("--engine", "bwrap", "--name", "box", "approve", cwd=repo).returncode == 0
    merged = airlock("--engine", "bwrap", "--name", "box", "merge", cwd=repo)
    assert merged.returncode == 0, merged.stderr
    assert git(repo, "log", "--format=%s", "main").splitlines() == ["first file"]
    assert (repo / "a.txt").read_text() == "hi\n"
    assert (repo / "notes.txt").read_text() == "mine, untracked\n"
    assert git(repo, "status", "--porcelain").splitlines() == ["?? notes.txt"]


def test_merging_into_an_empty_branch_never_overwrites_a_file_there(tmp_path: Path, hermetic: Env) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    assert run_in_sandbox(repo, "box", COMMIT).returncode == 0
    (repo / "a.txt").write_text("the user's own a.txt\n")
    assert airlock("--engine", "bwrap", "--name", "box", "approve", cwd=repo).returncode == 0
    merged = airlock("--engine", "bwrap", "--name", "box", "merge", cwd=repo)
    assert merged.returncode == 1
    assert "would be overwritten" in merged.stderr and "  a.txt" in merged.stderr
    assert (repo / "a.txt").read_text() == "the user's own a.txt\n"
    assert git(repo, "rev-parse", "-q", "--verify", "main", check=False) == ""
    assert not (repo / ".git" / "index").exists()


def test_up_yes_in_a_plain_folder_commits_what_is_there_first(tmp_path: Path, hermetic: Env) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "draft.py").write_text("print('draft')\n")
    script = "cat draft.py > seen.txt; git log --format=%s > log.txt"
    result = airlock(
        "--engine", "bwrap", "--agent", "shell", "--name", "box", "up", "--yes", "--", "-c", script, cwd=folder
    )
    assert result.returncode == 0, result.stderr
    assert git(folder, "log", "--format=%s").splitlines() == ["Initial commit"]
    assert git(folder, "ls-files").split() == ["draft.py"]
    assert sandbox_file(hermetic, "box", "seen.txt").read_text() == "print('draft')\n"
    assert sandbox_file(hermetic, "box", "log.txt").read_text() == "Initial commit\n"


def test_a_plain_folder_without_yes_is_left_alone(tmp_path: Path, hermetic: Env) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "draft.py").write_text("print('draft')\n")
    result = run_in_sandbox(folder, "box", "true")
    assert result.returncode == 1
    assert "error: not a git repository" in result.stderr and "hint: " in result.stderr
    assert sorted(os.listdir(folder)) == ["draft.py"]
    assert not data_dir(hermetic, "box").exists()


# -- creation is all or nothing -----------------------------------------------------------------------


def git_shim(hermetic: Env, body: str) -> dict[str, str]:
    """A `git` first on PATH that runs ``body`` (shell, "$@" = git's arguments) before the real git.

    git-airlock is then started as `git-airlock`: `git airlock` would put git's own folder first on PATH."""
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    shim = hermetic.tmp / "shim"
    shim.mkdir(exist_ok=True)
    script = shim / "git"
    script.write_text(f'#!/bin/sh\n{body}\nexec {real} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}


def test_a_failure_half_way_through_up_leaves_nothing(project: Path, hermetic: Env, tmpdir_env: Path) -> None:
    """git fails once the clone exists and the host knows the remote: everything made so far goes."""
    fail = git_shim(
        hermetic,
        'case "$*" in *"--add remote.sandbox-box.fetch"*) echo "fatal: simulated failure" >&2; exit 128;; esac',
    )
    before = git(project, "for-each-ref")
    result = subprocess.run(
        ["git-airlock", "--engine", "bwrap", "--agent", "shell", "--name", "box", "up", "--", "-c", "true"],
        cwd=project,
        env={**os.environ, **fail},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "simulated failure" in result.stderr
    assert leftovers(project, hermetic, "box", tmpdir_env) == []
    assert git(project, "for-each-ref") == before

    again = run_in_sandbox(project, "box", "echo ok > ok.txt")
    assert again.returncode == 0, again.stderr
    assert sandbox_file(hermetic, "box", "ok.txt").read_text() == "ok\n"


def test_ctrl_c_half_way_through_up_leaves_nothing(project: Path, hermetic: Env, tmpdir_env: Path) -> None:
    """Interrupted while git clones (the shim says so through a FIFO, then waits): exit 130, nothing left."""
    ready = hermetic.tmp / "ready"
    os.mkfifo(ready)
    wait = git_shim(hermetic, f'case "$1" in clone) echo cloning > {ready}; cat > /dev/null;; esac')
    up = subprocess.Popen(
        ["git-airlock", "--engine", "bwrap", "--agent", "shell", "--name", "box", "up", "--", "-c", "true"],
        cwd=project,
        env={**os.environ, **wait},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with open(ready, encoding="utf-8") as fifo:
        assert fifo.read() == "cloning\n"  # git-airlock is inside `git clone` now
    assert data_dir(hermetic, "box").exists()
    up.send_signal(signal.SIGINT)
    _, stderr = up.communicate(timeout=60)
    assert up.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert leftovers(project, hermetic, "box", tmpdir_env) == []


# -- one command per sandbox at a time ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("up", "--", "-c", "true"), ("stop",), ("rm", "--yes"), ("commit", "-m", "x"), ("fetch",)],
    ids=lambda command: command[0],
)
def test_a_sandbox_in_use_is_refused_with_who_holds_it(project: Path, hermetic: Env, command: tuple) -> None:
    assert run_in_sandbox(project, "box", "echo x > x.txt").returncode == 0
    from git_airlock import locks

    descriptor = locks.acquire("box", "up")
    try:
        result = airlock("--engine", "bwrap", "--agent", "shell", "--name", "box", *command, cwd=project)
    finally:
        locks.release("box", descriptor)
    assert result.returncode == 1
    assert f"error: sandbox box is busy (up in progress, pid {os.getpid()})" in result.stderr
    assert "hint: " in result.stderr
    assert data_dir(hermetic, "box").is_dir()
    assert sandbox_file(hermetic, "box", "x.txt").read_text() == "x\n"
    assert airlock("--engine", "bwrap", "--name", "box", "fetch", cwd=project).returncode == 0  # free again


@pytest.mark.parametrize("exists", [False, True], ids=["new", "stopped"])
def test_two_ups_at_once_start_one_agent(project: Path, hermetic: Env, exists: bool) -> None:
    """Both started together; the agent that starts records itself and waits for its stdin to close."""
    if exists:
        assert run_in_sandbox(project, "box", "true").returncode == 0
    agent = "echo started >> started.txt; cat > /dev/null"
    argv = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", "box", "up", "--", "-c", agent]
    ups = [subprocess.Popen(argv, cwd=project, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    # the loser ends by itself; the winner's agent runs until its stdin closes
    with ThreadPoolExecutor(2) as pool:
        ending = {pool.submit(up.wait): up for up in ups}
        try:
            done, _ = wait(ending, timeout=60, return_when=FIRST_COMPLETED)
            (loser,) = [ending[future] for future in done]
            (winner,) = [up for up in ups if up is not loser]
            assert winner.poll() is None, "both ended: neither started an agent"
            stderr = loser.stderr.read() if loser.stderr else ""
            assert loser.returncode == 1
            assert "is busy (" in stderr or "already exists (running)" in stderr, stderr
            winner.communicate(input="", timeout=60)
        finally:  # two agents (the race this test is about) would otherwise wait for input for ever
            for up in ups:
                if up.poll() is None:
                    up.kill()
    assert winner.returncode == 0
    assert sandbox_file(hermetic, "box", "started.txt").read_text() == "started\n"


# -- rm takes everything; a reused name starts clean -------------------------------------------------


def test_rm_removes_everything_the_sandbox_owned(project: Path, hermetic: Env, tmpdir_env: Path) -> None:
    assert run_in_sandbox(project, "box", "true").returncode == 0
    state = hermetic.home / ".local" / "state" / "git-airlock"
    assert (state / "net" / "box.jsonl").exists() or (tmpdir_env / f"git-airlock-{os.getuid()}").is_dir()
    result = airlock("--engine", "bwrap", "--name", "box", "rm", "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    assert leftovers(project, hermetic, "box", tmpdir_env, ledger=False) == []
    assert not (state / "net" / "box.jsonl").exists()
    assert not (state / "locks" / "box.lock").exists()


def test_folders_that_exist_are_made_private(project: Path, hermetic: Env, tmpdir_env: Path) -> None:
    share = hermetic.home / ".local" / "share" / "git-airlock" / "sandboxes"
    net = hermetic.home / ".local" / "state" / "git-airlock" / "net"
    for folder in (share, net):
        folder.mkdir(parents=True, mode=0o755)
        folder.chmod(0o755)
    assert run_in_sandbox(project, "box", "true").returncode == 0
    for folder in (share, net, data_dir(hermetic, "box"), data_dir(hermetic, "box") / "home"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_reused_name_starts_clean_and_the_old_work_stays_findable(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "box", "echo old > old.txt && git add old.txt && git commit -qm old").returncode == 0
    assert airlock("--engine", "bwrap", "--name", "box", "rm", "--yes", cwd=project).returncode == 0
    old = git(project, "rev-parse", "refs/sandboxes/box/main").strip()

    again = run_in_sandbox(project, "box", "true")
    assert again.returncode == 0, again.stderr
    (note,) = [line for line in again.stderr.splitlines() if "earlier sandbox named box" in line]
    retired = note.split("kept as ")[1].split()[0]
    assert retired.startswith("box@")
    assert git(project, "for-each-ref", "--format=%(refname)", "refs/sandboxes/box/") == ""
    assert git(project, "rev-parse", f"refs/sandboxes/{retired}/main").strip() == old

    log = airlock("--engine", "bwrap", "log", "--all-sandboxes", cwd=project)
    assert f"sandbox {retired}, branch main: 1 unreviewed commit(s)" in log.stdout
    assert "sandbox box," not in log.stdout
    mine = airlock("--engine", "bwrap", "--name", "box", "log", cwd=project)
    assert mine.stdout == "nothing fetched from sandbox box yet (`git airlock fetch`)\n"


# -- only what follows `--` goes to the agent -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (("up", "--frob"), "no such option for `git airlock up`: --frob", "`git airlock up -- --frob`"),
        (("up", "stray"), "got unexpected extra argument (stray)", "arguments for the agent go after `--`"),
        (("up", "--agent", "codex"), "no such option for `git airlock up`: --agent", "`git airlock --agent ... up`"),
        (
            ("run", "task", "--model", "x"),
            "no such option for `git airlock run`: --model",
            "`git airlock run -- --model`",
        ),
        (("run", ""), "the task is empty", 'git airlock run "'),
        (("run", "  "), "the task is empty", 'git airlock run "'),
    ],
)
def test_what_is_not_the_commands_own_is_a_usage_error(
    project: Path, hermetic: Env, args: tuple[str, ...], message: str, hint: str
) -> None:
    result = airlock("--engine", "bwrap", "--dry-run", *args, cwd=project)
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""  # nothing planned, nothing started
    error, hint_line = result.stderr.splitlines()[-2:]
    assert error.startswith("error: ") and message in error
    assert hint_line.startswith("hint: ") and hint in hint_line


def test_arguments_after_the_separator_reach_the_agent_untouched(project: Path, hermetic: Env) -> None:
    script = 'printf "%s\\n" "$@" > args.txt'
    result = airlock(
        "--engine",
        "bwrap",
        "--agent",
        "shell",
        "--name",
        "box",
        "up",
        "--",
        "-c",
        script,
        "sh",
        "--frob",
        "--",
        "x",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert sandbox_file(hermetic, "box", "args.txt").read_text() == "--frob\n--\nx\n"


def test_stop_lets_the_gate_shut_down_cleanly(project: Path, hermetic: Env, tmpdir_env: Path) -> None:
    """`stop` signals every process of the sandbox, the gate's supervisor among them: it stops the sandbox
    and then shuts the gate down as when the agent ends by itself, removing its socket."""
    agent = "echo ready; cat > /dev/null"
    argv = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", "box", "up", "--", "-c", agent]
    up = subprocess.Popen(argv, cwd=project, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout is not None and up.stdout.readline() == "ready\n"  # the agent runs behind its gate
        (socket_file,) = (tmpdir_env / f"git-airlock-{os.getuid()}").glob("*/socket/egress.sock")
        stopped = airlock("--engine", "bwrap", "--name", "box", "stop", cwd=project)
        assert stopped.returncode == 0, stopped.stderr
        up.wait(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
    assert not socket_file.exists()
