"""On sbx, a sandbox must not push to the user's forge behind git-airlock's back.

Clone mode copies the host's forge remotes into the clone; `up` makes them unable
to push before the agent starts, and warns about the credentials (a forwarded SSH
agent, a github secret) that would let an agent push anyway. The forge here is a
real `git daemon` on 127.0.0.1 that accepts pushes.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FAKES, Env, airlock, git, write_agent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[str]:
    """A bare repository served read-write over git:// (a URL clone mode copies, unlike a path)."""
    root = tmp_path / "forge"
    git(tmp_path, "init", "-q", "--bare", str(root / "project.git"))
    port = free_port()
    serve = ("--export-all", "--enable=receive-pack", "--reuseaddr", f"--base-path={root}", str(root))
    daemon = subprocess.Popen(
        ["git", "daemon", "--listen=127.0.0.1", f"--port={port}", *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"git://127.0.0.1:{port}/project.git"
    daemon.terminate()
    daemon.wait(timeout=10)


PUSHING_AGENT = """\
git commit -q --allow-empty -m "agent work"
for target in origin upstream "$FORGE_URL"; do
  if git push -q "$target" HEAD:refs/heads/from-agent 2>/dev/null; then
    echo "pushed $target" >> "$AGENT_LOG"
  else
    echo "refused $target" >> "$AGENT_LOG"
  fi
done
"""


def test_the_clone_cannot_push_to_a_forge_remote(project: Path, hermetic: Env, forge: str) -> None:
    git(project, "remote", "add", "origin", forge)
    git(project, "remote", "add", "upstream", forge)
    git(project, "push", "-q", "origin", "main")
    write_agent(hermetic, PUSHING_AGENT)
    up = airlock("--name", "box", "up", cwd=project, env={"FORGE_URL": forge})
    assert up.returncode == 0, up.stderr

    log = (hermetic.tmp / "agent-args.txt").read_text().splitlines()
    assert log == ["refused origin", "refused upstream", f"refused {forge}"]
    assert git(project, "ls-remote", "origin", "refs/heads/*").split()[1::2] == ["refs/heads/main"], "forge untouched"
    assert git(project, "for-each-ref", "refs/heads/").split()[2::3] == ["refs/heads/main"], "nor the host"
    calls = hermetic.sbx_calls()
    assert ["create", "--clone", "--name", "box", "claude", str(project)] in calls
    assert calls.index(["run", "box", "--"]) > next(
        i for i, c in enumerate(calls) if c[:4] == ["exec", "box", "sh", "-c"]
    )

    # the agent's commit still comes home the reviewed way
    assert airlock("--name", "box", "fetch", cwd=project).returncode == 0
    subject = git(project, "log", "-1", "--format=%s", "refs/remotes/sandbox-box/main").strip()
    assert subject == "agent work"


def test_a_restarted_sandbox_is_guarded_again(project: Path, hermetic: Env, forge: str) -> None:
    git(project, "remote", "add", "origin", forge)
    write_agent(hermetic, "true\n")
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    assert airlock("--name", "box", "stop", cwd=project).returncode == 0
    clone = hermetic.sbx_state / "sandboxes" / "box" / "vm" / project.name
    git(clone, "config", "--unset-all", "remote.origin.pushurl")  # as an agent could
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    assert git(clone, "config", "--get-all", "remote.origin.pushurl").split() == ["/dev/null/git-airlock-no-push"]


def test_dry_run_shows_the_guard_before_the_agent(project: Path, hermetic: Env, no_sbx: None) -> None:
    git(project, "remote", "add", "origin", "https://forge.example/me/project.git")
    result = airlock("--dry-run", "--name", "box", "up", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    repo = shlex.quote(str(project))
    assert lines[-3] == f"sbx create --clone --name box claude {repo}"
    assert lines[-2].startswith("sbx exec box sh -c ") and "pushurl" in lines[-2]
    assert lines[-1] == "sbx run box --"


def test_up_and_doctor_warn_about_forge_credentials(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    sbx = str(FAKES / "sbx")
    subprocess.run([sbx, "secret", "set", "-g", "github"], input="ghp_x\n", text=True, check=True, capture_output=True)
    up = airlock("up", cwd=project)
    assert up.returncode == 0, up.stderr
    assert "warning: sbx forwards your SSH agent into every sandbox" in up.stderr
    assert "sbx settings set ssh.agentForwardingEnabled false" in up.stderr
    assert "warning: a github secret is stored for every sandbox" in up.stderr
    doctor = airlock("doctor", cwd=project).stdout
    assert doctor.count("WARN  forge push") == 2

    subprocess.run([sbx, "settings", "set", "ssh.agentForwardingEnabled", "false"], check=True)
    subprocess.run([sbx, "secret", "rm", "-g", "github"], check=True, capture_output=True)
    assert airlock("stop", cwd=project).returncode == 0
    quiet = airlock("up", cwd=project)
    assert quiet.returncode == 0 and "warning:" not in quiet.stderr, quiet.stderr
    assert "OK    forge push" in airlock("doctor", cwd=project).stdout


def test_secret_services_on_sbx(project: Path, hermetic: Env) -> None:
    claude = airlock("--engine", "sbx", "secret", "set", "claude", cwd=project, input="token\n")
    assert claude.returncode == 1
    assert "error: sbx has no `claude` service" in claude.stderr
    assert "hint: log in inside the agent, or `git airlock secret set anthropic`" in claude.stderr
    unknown = airlock("--engine", "sbx", "secret", "set", "nosuch", cwd=project, input="x\n")
    assert unknown.returncode == 1 and "hint: sbx's services: anthropic, aws, github" in unknown.stderr
    assert not [c for c in hermetic.sbx_calls() if c[:2] == ["secret", "set"]], "refused before sbx is asked"
    github = airlock("--engine", "sbx", "secret", "set", "github", cwd=project, input="ghp_x\n")
    assert github.returncode == 0, github.stderr
    assert "warning: with a github secret, sandboxes can push to GitHub" in github.stderr
