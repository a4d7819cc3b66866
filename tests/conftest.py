"""Hermetic test environment (git-revise's model) and helpers shared by the suite.

Every test gets its own HOME, XDG dirs, git identity and config (no system or
user config leaks in), its own tmux server, no D-Bus session (so no OS keyring unless a test
starts one), and the sbx emulator first on PATH with its own state directory. Tests drive the real ``git airlock``
entry point through git's subcommand mechanism.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from people import Person, another, make_user, remove_user, system_python_matches

FAKES = Path(__file__).parent / "fakes"
SETTING_VARS = (
    "AGENT",
    "SANDBOX_NAME",
    "REPO_DIR",
    "GLOBAL_NETWORK_POLICY",
    "REVIEW_TOOL",
    "TMUX_SESSION",
    "TMUX_ATTACH",
    "ALLOW",
    "AIRLOCK_ENGINE",
    "TMUX",
    "TMUX_PANE",
    "GIT_AIRLOCK_DEBUG",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
)


@dataclass
class Env:
    tmp: Path
    home: Path
    sbx_state: Path
    mp: pytest.MonkeyPatch

    def sbx_calls(self) -> list[list[str]]:
        path = self.sbx_state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["argv"] for line in path.read_text().splitlines() if line.strip()]

    def sbx_state_json(self) -> dict:
        return json.loads((self.sbx_state / "state.json").read_text())


class AgentStore:
    """Agent CLIs installed once per test session with `git airlock agents install`, each test getting
    its own copy (hard links: nothing is downloaded or unpacked again) under its own data directory.

    The session's installs run in a HOME of their own, with one npm cache the session shares, so the
    suite installs each agent from the registry once however many tests start it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.installed: dict[str, subprocess.CompletedProcess[str]] = {}

    def env(self) -> dict[str, str]:
        home = self.root / "home"
        return {
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "npm_config_cache": str(self.root / "npm-cache"),
        }

    def install(self, name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """``agents install NAME`` in the session's HOME, the first time only."""
        if name not in self.installed:
            (self.root / "home").mkdir(parents=True, exist_ok=True)
            self.installed[name] = airlock("--engine", "bwrap", "agents", "install", name, cwd=cwd,
                                           env=self.env(), timeout=900)  # fmt: skip
        return self.installed[name]

    def give(self, data_home: Path) -> None:
        """The session's agents into a test's data directory, as `agents install` leaves them."""
        store = Path(self.env()["XDG_DATA_HOME"]) / "git-airlock" / "agents"
        target = data_home / "git-airlock" / "agents"
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(store), str(target)], check=True)


@pytest.fixture(scope="session")
def agent_store(tmp_path_factory: pytest.TempPathFactory) -> AgentStore:
    return AgentStore(tmp_path_factory.mktemp("agents"))


@pytest.fixture
def install_agent(agent_store: AgentStore, hermetic: Env) -> Callable[[str, Path], None]:
    """``install_agent(NAME, project)``: the agent installed for this test's sandboxes, as after
    `git airlock agents install NAME` (installed from npm once per session)."""

    def install(name: str, cwd: Path) -> None:
        done = agent_store.install(name, cwd)
        assert done.returncode == 0, done.stdout + done.stderr
        agent_store.give(hermetic.home / ".local" / "share")

    return install


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith(("GIT_", "SBX_", "XDG_", "DBUS_", "PYTHON_KEYRING")) or var in SETTING_VARS:
            monkeypatch.delenv(var, raising=False)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Host User\n\temail = host@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    tmux_dir = tmp_path / "tmux"
    tmux_dir.mkdir()
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
        "SBX_FAKE_STATE": str(tmp_path / "sbx-state"),
        "TMUX_TMPDIR": str(tmux_dir),
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        "LANG": "C.UTF-8",
        # the emulator first, then the interpreter's scripts (git-airlock), then the rest
        "PATH": os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import pygit2

    for level in (pygit2.enums.ConfigLevel.GLOBAL, pygit2.enums.ConfigLevel.XDG, pygit2.enums.ConfigLevel.SYSTEM):
        pygit2.settings.search_path[level] = str(home)
    yield Env(tmp_path, home, tmp_path / "sbx-state", monkeypatch)
    if (tmp_path / "sbx-state").exists():
        subprocess.run([str(FAKES / "sbx"), "_emulator", "shutdown"], capture_output=True)
    subprocess.run(["tmux", "kill-server"], capture_output=True)


def git(cwd: Path | str, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def airlock(
    *args: str, cwd: Path | str, input: str | None = None, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``git airlock ARGS`` the way a user does: through git's subcommand lookup."""
    proc = subprocess.run(
        ["git", "airlock", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def snapshot(repo: Path) -> dict[str, str]:
    """Everything a failed operation must leave alone: refs, HEAD, index, working tree, stash."""
    files = {}
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts or not path.is_file():
            continue
        files[str(path.relative_to(repo))] = path.read_bytes().hex()
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags"),
        "head": git(repo, "symbolic-ref", "-q", "HEAD", check=False) + git(repo, "rev-parse", "HEAD"),
        "index": (repo / ".git" / "index").read_bytes().hex() if (repo / ".git" / "index").exists() else "",
        "stash": git(repo, "stash", "list"),
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "files": json.dumps(files),
    }


@pytest.fixture(scope="session")
def ordinary_user() -> Iterator[Person]:
    """A user the suite creates (``useradd``), with /dev/fuse usable as udev makes it (mode 0666)."""
    if os.getuid() != 0:
        pytest.skip("creating a user needs root (CI runs the suite as root)")
    assert system_python_matches(), "the system's python3 must match the suite's Python to run this checkout"
    fuse = Path("/dev/fuse")
    mode = stat.S_IMODE(fuse.stat().st_mode) if fuse.exists() else None
    if mode is not None:
        fuse.chmod(0o666)
    person = make_user()
    try:
        yield person
    finally:
        remove_user(person)
        if mode is not None:
            fuse.chmod(mode)


@pytest.fixture(params=["suite", "user"])
def person(request: pytest.FixtureRequest, hermetic: Env) -> Person:
    """Whoever runs the suite (root, in CI), then an ordinary user: the two map a sandbox's uids differently."""
    if request.param == "suite":
        me = Person(os.environ.get("USER", "root"), os.getuid(), os.getgid(), hermetic.tmp)
        me.prepare()
        return me
    return another(request.getfixturevalue("ordinary_user"), hermetic.tmp.name)


@pytest.fixture
def project(git_repo) -> Path:
    """A real repository (pytest-git's ``git_repo``) with one commit on main."""
    path = Path(str(git_repo.workspace))
    git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    (path / "README.md").write_text("hello\n")
    (path / "app.py").write_text("print('v1')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


def write_agent(env: Env, body: str, name: str = "agent.sh") -> Path:
    """A stand-in agent the emulator runs inside the clone (cwd = the clone)."""
    script = env.tmp / name
    script.write_text("#!/bin/sh\nset -e\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env.mp.setenv("SBX_FAKE_AGENT", str(script))
    env.mp.setenv("AGENT_LOG", str(env.tmp / "agent-args.txt"))
    return script


COMMIT_AGENT = """\
printf '%s\\n' "$@" > "$AGENT_LOG"
echo "print('v2 from agent')" > app.py
git add app.py
git commit -q -m "agent: update app"
"""


@pytest.fixture
def no_sbx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH with git, tmux and git-airlock but no sbx at all."""
    bindir = tmp_path / "bin-nosbx"
    bindir.mkdir()
    for tool in ("git", "tmux", "git-airlock", "python3", "sh", "env"):
        found = shutil.which(
            tool, path=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != FAKES)
        )
        if found:
            (bindir / tool).symlink_to(found)
    git_exec = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), git_exec]))


def data_dir(hermetic: Env, name: str) -> Path:
    return hermetic.home / ".local" / "share" / "git-airlock" / "sandboxes" / name


def sandbox_file(hermetic: Env, name: str, relative: str) -> Path:
    """A file the agent wrote in its working tree: in the overlay layer, or in a plain clone."""
    root = data_dir(hermetic, name)
    upper = root / "upper" / relative
    return upper if (root / "upper").is_dir() else root / "clone" / relative


def run_in_sandbox(project: Path, name: str, script: str, *flags: str, env: dict | None = None):
    """`git airlock up` with the shell agent running ``script`` (a stand-in for an agent)."""
    return airlock(
        "--engine", "bwrap", "--agent", "shell", "--name", name, *flags, "up", "--", "-c", script, cwd=project, env=env
    )


def up_shell(name: str) -> list[str]:
    """`git airlock up` of a bwrap sandbox whose shell agent runs the script that follows."""
    return ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", name, "up", "--", "-c"]


@contextlib.contextmanager
def running_agent(project: Path, name: str, script: str, env: dict | None = None) -> Iterator[subprocess.Popen[str]]:
    """`up` of a bwrap sandbox whose agent runs ``script``: the block runs once it printed "ready"
    (it then waits on its input), and the agent is let go when the block ends."""
    agent = subprocess.Popen(
        [*up_shell(name), script],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert agent.stdout is not None and agent.stdout.readline() == "ready\n"  # the agent is running
        yield agent
    finally:
        agent.communicate("go\n", timeout=60)


def sandbox_names(project: Path) -> list[str]:
    """The sandboxes `git airlock` made for ``project``, from their git remotes."""
    remotes = git(project, "remote").split()
    return [remote.removeprefix("sandbox-") for remote in remotes if remote.startswith("sandbox-")]


def gate_log(hermetic: Env, name: str) -> list[dict]:
    """The egress gate's log of one sandbox: one entry per connection attempt."""
    path = hermetic.home / ".local" / "state" / "git-airlock" / "net" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def files_holding(root: Path, value: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``value``."""
    needle = value.encode()
    return [
        path for path in root.rglob("*") if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


def sandbox_setenv(dry_run_stdout: str) -> tuple[dict[str, str], list[str]]:
    """The variables and the command of the sandbox a dry run would start (its last line: bwrap's argv)."""
    argv = shlex.split(dry_run_stdout.splitlines()[-1])
    env = {argv[i + 1]: argv[i + 2] for i, arg in enumerate(argv) if arg == "--setenv"}
    return env, argv


def key_seen_in_sandbox(
    project: Path, hermetic: Env, name: str, key: str, env: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Where ``key`` shows up for sandbox ``name`` (in a file it keeps: HOME, clone, layer; or, looked for
    from inside with the shell agent, in its HOME, /run, /tmp, any process's environment or command line,
    or the clone), and the environment the sandbox's processes see, as ``NAME=value`` lines."""
    found = [str(path) for path in files_holding(data_dir(hermetic, name), key)]
    head, tail = key[:12], key[12:]  # never spelled whole on a command line the scan itself could match
    scan = (
        f'pat={head}; pat="$pat"{tail}; '
        'grep -rsl "$pat" /home/agent /run /tmp /proc/[0-9]*/environ /proc/[0-9]*/cmdline . > leaks.txt; '
        "env > env.txt"
    )
    look = airlock(
        "--engine", "bwrap", "--agent", "shell", "--name", name, "up", "--", "-c", scan, cwd=project, env=env
    )
    assert look.returncode == 0, look.stderr
    found += sandbox_file(hermetic, name, "leaks.txt").read_text().split()
    return found, sandbox_file(hermetic, name, "env.txt").read_text().splitlines()


def net_rows(project: Path) -> list[list[str]]:
    """The destinations `git airlock net` lists for the bwrap sandbox, as words: host:port, allowed, blocked, ..."""
    net = airlock("--engine", "bwrap", "net", cwd=project)
    assert net.returncode == 0, net.stderr
    return [line.split() for line in net.stdout.splitlines()[1:] if line.strip()]


def approve_and_merge(project: Path) -> None:
    """Bring the sandbox's work home through review: approve it, then merge it into the current branch."""
    approved = airlock("--engine", "bwrap", "approve", cwd=project)
    assert approved.returncode == 0, approved.stderr
    merged = airlock("--engine", "bwrap", "merge", cwd=project)
    assert merged.returncode == 0, merged.stderr


def assert_gate_dialled_only(hermetic: Env, name: str, host: str, port: int, service: str, key: str) -> None:
    """The gate's log of sandbox ``name``: every attempt to ``service``'s credential endpoint at
    ``host``:``port`` (no update check, analytics or plugin sync), none blocked, and the key nowhere in it.

    An attempt still dialling the stand-in when the test's ``stop`` ends the gate is logged as failed:
    it went to the same endpoint, so it is allowed here; any other host or a block is not."""
    log = gate_log(hermetic, name)
    assert {(entry["host"], entry["port"], entry.get("credential")) for entry in log} == {(host, port, service)}, log
    actions = [entry["action"] for entry in log]
    assert "allowed" in actions and set(actions) <= {"allowed", "failed"}, log
    assert key not in json.dumps(log)


AGENT_ENDED = "[git-airlock] the agent exited with status"
"""What a tmux window says when the agent is gone (``tmux.AFTERWARDS``)."""


def pane(session: str) -> str:
    """What the tmux window of ``session`` shows now."""
    shown = subprocess.run(["tmux", "capture-pane", "-p", "-t", f"={session}:"], capture_output=True, text=True)
    return shown.stdout


def wait_for_screen(
    session: str, ready: Callable[[str], bool], questions: tuple[str, ...], deadline: float = 60
) -> str:
    """The window once ``ready`` says it shows the agent's prompt, or it shows one of ``questions`` (a first-start
    screen) or the agent's end; as it is at ``deadline`` otherwise.

    Nothing tells when a TUI is ready for typing, so the window is read every 0.1 s until then."""
    end = time.monotonic() + deadline
    while True:
        shown = pane(session)
        if ready(shown) or AGENT_ENDED in shown or any(question in shown for question in questions):
            return shown
        if time.monotonic() > end:
            return shown
        time.sleep(0.1)
