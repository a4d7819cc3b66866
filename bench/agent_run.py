"""Time a whole agent task in a bwrap sandbox (`git airlock run`), next to the same CLI on the host.

Run by hand: ``python bench/agent_run.py [--agent claude|opencode] [--runs 5]``. Needs bwrap, npm and the
npm registry (to install the agent's CLI once, into the temporary data directory).

The model is the loopback stand-in of Anthropic's Messages API the test suite uses
(``tests/fakes/messages_api.py``): it answers the task with one call of the agent's shell tool (Claude
Code's ``Bash``, OpenCode's ``bash``) that writes hello.txt and commits it, then with a final text, so the
time is the agent's and git-airlock's, not a model's. Each run, alternating:

- ``git airlock --engine bwrap --agent AGENT --name benchN run TASK`` in a new sandbox, from its start
  until it returns; by then `run` has fetched the commit, which must be at
  ``refs/remotes/sandbox-benchN/main``. The key is held with `git airlock secret set anthropic`, and the
  egress gate reaches the stand-in as api.anthropic.com (``AIRLOCK_SERVICE_URLS``,
  ``AIRLOCK_EGRESS_RESOLVE``, ``SSL_CERT_FILE``), as in ``tests/test_real_claude.py``. The sandbox is
  removed afterwards, untimed.
- the same installed CLI on the host in its headless form (``claude --dangerously-skip-permissions -p
  TASK``, ``opencode run TASK``) in a plain clone with a new HOME, the variables and files every sandbox
  gives the agent (Claude Code's ``IS_SANDBOX=1`` among them, without which it refuses that flag as root;
  OpenCode's inline config naming the provider), the key in ``ANTHROPIC_API_KEY`` and the stand-in at
  ``ANTHROPIC_BASE_URL=https://127.0.0.1:PORT``, trusted through ``NODE_EXTRA_CA_CERTS``; until it
  returns, when the clone's main must hold the commit. Any other connection it tries goes to a proxy
  address on loopback where nothing listens.

Everything lives in temporary HOME and XDG directories; nothing of yours is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.messages_api import HOST_NAME, MessagesApi, certificate
from git_airlock.agents import AGENTS, Agent
from git_airlock.settingkeys import KEYS

TASK = "create hello.txt and commit it"
COMMAND = 'echo hello > hello.txt && git add hello.txt && git commit -m "add hello"'
SHELL_TOOLS = {"claude": "Bash", "opencode": "bash"}
"""The agents timed, each with the name of its shell tool (the one the stand-in calls)."""
DEAD_PROXY = "http://127.0.0.1:9"
"""Where the host run's connections other than to the stand-in go: loopback's discard port, closed."""
DROPPED_PREFIXES = ("GIT_", "SBX_", "XDG_", "DBUS_", "PYTHON_KEYRING", "TMUX", "ANTHROPIC_", "CLAUDE_", "AIRLOCK_")
"""Host variables that would reach into the user's git, keyring, tmux, credentials or git-airlock settings."""


def hermetic_env(tmp: Path) -> dict[str, str]:
    """The host environment without the user's git, XDG, keyring, tmux and git-airlock settings, with a
    HOME and git configuration of its own under ``tmp``. npm keeps the host's authorities."""
    home = tmp / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.invalid\n[init]\n\tdefaultBranch = main\n"
        '[advice]\n\tdetachedHead = false\n[protocol "file"]\n\tallow = always\n'
    )
    dropped = {key.env for key in KEYS}
    env = {
        var: value for var, value in os.environ.items() if not var.startswith(DROPPED_PREFIXES) and var not in dropped
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "TMUX_TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
        }
    )
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None, timeout: float = 300) -> str:
    """``argv``'s standard output; its whole output in the error if it fails. ``PWD`` is ``cwd``: OpenCode
    works in the folder ``PWD`` names, and the caller's would be this checkout."""
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env={**env, "PWD": str(cwd)},
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Milliseconds ``argv`` took, from its start until it returned."""
    start = time.perf_counter()
    run(argv, cwd, env)
    return (time.perf_counter() - start) * 1000


def check_commit(repo: Path, ref: str, base: str, env: dict[str, str]) -> None:
    """Fail unless ``ref`` is the agent's commit: on ``base``, holding hello.txt."""
    parent = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{ref}^"], cwd=repo, env=env, capture_output=True, text=True
    ).stdout.strip()
    hello = subprocess.run(["git", "show", f"{ref}:hello.txt"], cwd=repo, env=env, capture_output=True, text=True)
    if parent != base or hello.stdout != "hello\n":
        raise SystemExit(f"{ref} in {repo} is not the agent's commit on {base} (parent {parent or 'none'})")


def sandboxed(agent: Agent, project: Path, name: str, base: str, env: dict[str, str]) -> float:
    """Milliseconds of `git airlock run TASK` in a new sandbox ``name``, whose commit it must have fetched."""
    airlock = ["git", "airlock", "--engine", "bwrap", "--agent", agent.name, "--name", name]
    ms = timed([*airlock, "run", TASK], project, env)
    check_commit(project, f"refs/remotes/sandbox-{name}/main", base, env)
    run([*airlock, "rm", "--yes", "--no-fetch"], project, env)
    return ms


def direct(agent: Agent, binary: Path, project: Path, work: Path, base: str, env: dict[str, str]) -> float:
    """Milliseconds of the agent's headless form on TASK in a new clone with a new HOME."""
    clone, home = work / "clone", work / "home"
    run(["git", "clone", "-q", str(project), str(clone)], work.parent, env)
    answers = agent.home_files(env, str(clone)) if agent.home_files else {}
    for relative, values in answers.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(json.dumps(values))
    env = {
        **env,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    ms = timed([str(binary), *agent.headless_args(TASK)[0]], clone, env)
    check_commit(clone, "refs/heads/main", base, env)
    return ms


def row(label: str, samples: list[float]) -> str:
    each = "  ".join(f"{ms:7.0f}" for ms in samples)
    return f"{label:<46} {statistics.median(samples):7.0f} ms   {each}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", choices=sorted(SHELL_TOOLS), default="claude")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    agent = AGENTS[args.agent]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = hermetic_env(tmp)
        project = tmp / "project"
        run(["git", "init", "-q", str(project)], tmp, env)
        (project / "README.md").write_text("hello\n")
        run(["git", "add", "README.md"], project, env)
        run(["git", "commit", "-q", "-m", "initial"], project, env)
        base = run(["git", "rev-parse", "HEAD"], project, env).strip()

        started = time.perf_counter()
        run(["git", "airlock", "--engine", "bwrap", "agents", "install", agent.name], project, env, timeout=900)
        binary = Path(env["XDG_DATA_HOME"]) / "git-airlock" / "agents" / "npm" / "bin" / agent.executable
        if not binary.exists():
            raise SystemExit(f"`git airlock agents install {agent.name}` left no {binary}")
        manifest = binary.parent.parent / "lib" / "node_modules" / agent.npm_package / "package.json"
        version = json.loads(manifest.read_text())["version"]
        print(f"{agent.npm_package} {version} installed in {time.perf_counter() - started:.0f} s")
        key = "sk-ant-bench-" + secrets.token_hex(20)
        run(["git", "airlock", "--engine", "bwrap", "secret", "set", "anthropic"], project, env, stdin=key + "\n")

        cert, cert_key = certificate(tmp)
        with MessagesApi(cert, cert_key, COMMAND, tool=SHELL_TOOLS[agent.name]) as api:
            gated = {
                **env,
                "AIRLOCK_SERVICE_URLS": f"anthropic=https://{HOST_NAME}:{api.port}",
                "AIRLOCK_EGRESS_RESOLVE": ",".join(f"{host}=127.0.0.1" for host in agent.hosts),
                "SSL_CERT_FILE": str(cert),
            }
            host = {
                **env,
                "ANTHROPIC_API_KEY": key,
                "ANTHROPIC_BASE_URL": f"https://127.0.0.1:{api.port}",
                "NODE_EXTRA_CA_CERTS": str(cert),
                **{var: DEAD_PROXY for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
                "NO_PROXY": "localhost,127.0.0.1,::1",
                "no_proxy": "localhost,127.0.0.1,::1",
            }
            host.update(agent.sandbox_environment(host))  # its switches, and its provider on that URL
            in_sandbox: list[float] = []
            on_host: list[float] = []
            for i in range(args.runs):
                in_sandbox.append(sandboxed(agent, project, f"bench{i}", base, gated))
                work = tmp / f"direct{i}"
                work.mkdir()
                on_host.append(direct(agent, binary, project, work, base, host))

    print(f'task "{TASK}", loopback stand-in of the Messages API, {args.runs} runs each, alternating')
    print(f"{'':<46} {'median':>10}   each run (ms)")
    print(row(f"git airlock --engine bwrap --agent {agent.name} run TASK", in_sandbox))
    print(row(" ".join([agent.executable, *agent.headless_args("TASK")[0]]), on_host))
    sandbox_ms, host_ms = statistics.median(in_sandbox), statistics.median(on_host)
    print(f"git airlock run / {agent.name} on the host: {sandbox_ms / host_ms:.2f}x ({sandbox_ms - host_ms:+.0f} ms)")


if __name__ == "__main__":
    main()
