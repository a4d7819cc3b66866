"""`net` tells the policy's blocks from failures, and `net --suggest` says what to allow, exactly.
A real bwrap sandbox and its egress gate, loopback HTTP servers under made-up names."""

from __future__ import annotations

import http.server
import json
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bwrap import FETCH
from test_network import sandbox_name

from conftest import Env, airlock, git, run_in_sandbox, sandbox_file


@pytest.fixture
def web() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


NAMES = ("api.allowed.test", "down.allowed.test", "cdn.blocked.test", "img.blocked.test")


def fetch_in_sandbox(project: Path, hermetic: Env, name: str, urls: list[str]) -> list[str]:
    """Run the sandbox's agent over ``urls`` through the gate; what each answered (status or error)."""
    resolve = ",".join(f"{host}=127.0.0.1" for host in NAMES)
    script = f"python3 -c {shlex.quote(FETCH)} {' '.join(urls)} > fetched.txt"
    result = run_in_sandbox(project, name, script, env={"AIRLOCK_EGRESS_RESOLVE": resolve})
    assert result.returncode == 0, result.stderr
    return sandbox_file(hermetic, name, "fetched.txt").read_text().splitlines()


def test_net_tells_blocked_from_failed_and_suggest_opens_the_blocked_host(
    project: Path, hermetic: Env, web: int
) -> None:
    down = closed_port()
    git(project, "config", "airlock.preset.mine", f"api.allowed.test:{web},down.allowed.test:{down}")
    urls = [
        f"http://api.allowed.test:{web}/",
        f"http://down.allowed.test:{down}/",
        f"http://cdn.blocked.test:{web}/",
        f"http://cdn.blocked.test:{web}/again",
        f"http://img.blocked.test:{web}/",
    ]
    seen = fetch_in_sandbox(project, hermetic, "sug", urls)
    assert seen[0] == "200" and seen[2:] == ["403", "403", "403"]

    net = airlock("--engine", "bwrap", "--name", "sug", "net", cwd=project)
    assert net.stdout.split("\n", 1)[0].split()[:4] == ["destination", "allowed", "blocked", "failed"]
    rows = {line.split()[0]: line.split()[1:4] for line in net.stdout.splitlines()[1:]}
    assert rows[f"api.allowed.test:{web}"] == ["1", "0", "0"]
    assert rows[f"down.allowed.test:{down}"] == ["0", "0", "1"]
    assert rows[f"cdn.blocked.test:{web}"] == ["0", "2", "0"]
    assert rows[f"img.blocked.test:{web}"] == ["0", "1", "0"]

    suggested = airlock("--engine", "bwrap", "--name", "sug", "net", "--suggest", cwd=project)
    assert suggested.returncode == 0, suggested.stderr
    lines = suggested.stdout.splitlines()
    assert lines[0] == (f"blocked.test: 3 blocked attempt(s): cdn.blocked.test:{web} (2), img.blocked.test:{web} (1)")
    assert "allowed.test" not in suggested.stdout  # neither the allowed host nor the failed one is proposed
    command = lines[1].split(":", 1)[1].strip()
    assert command == (f"git config airlock.preset.blocked-test cdn.blocked.test:{web},img.blocked.test:{web}")
    assert f"git config airlock.preset.blocked-test 'blocked.test:{web},*.blocked.test:{web}'" in lines[2]

    subprocess.run(shlex.split(command), cwd=project, check=True)  # exactly what the user would paste
    again = fetch_in_sandbox(
        project, hermetic, "sug", [f"http://cdn.blocked.test:{web}/", f"http://img.blocked.test:{web}/"]
    )
    assert again == ["200", "200"]


def test_suggest_on_sbx_reads_the_policy_log(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    hermetic.sbx_state.mkdir(parents=True, exist_ok=True)
    (hermetic.sbx_state / "policy-log.json").write_text(
        json.dumps(
            [
                {"sandbox": name, "host": "api.anthropic.com", "port": 443, "action": "allowed", "count": 12},
                {
                    "sandbox": name,
                    "host": "objects.githubusercontent.com",
                    "port": 443,
                    "action": "blocked",
                    "count": 7,
                },
                {"sandbox": "other", "host": "evil.example", "port": 443, "action": "blocked", "count": 3},
            ]
        )
    )
    result = airlock("net", "--suggest", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "githubusercontent.com: 7 blocked attempt(s): objects.githubusercontent.com:443 (7)"
    )
    assert "git config airlock.preset.githubusercontent-com objects.githubusercontent.com" in result.stdout
    assert "evil.example" not in result.stdout


def test_suggest_proposes_no_host_a_rule_could_not_hold(project: Path, hermetic: Env) -> None:
    name = sandbox_name(project)
    hermetic.sbx_state.mkdir(parents=True, exist_ok=True)
    hostile = ["evil.example\nhint: allow everything", "*", "a.example,*", "https://x.example/"]
    log = [{"sandbox": name, "host": host, "port": 443, "action": "blocked", "count": 1} for host in hostile]
    (hermetic.sbx_state / "policy-log.json").write_text(json.dumps(log))
    result = airlock("net", "--suggest", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the network policy blocked nothing\n"
