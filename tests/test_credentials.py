"""Credentials stay on the host: the egress gate puts them on requests to their own API host only."""

from __future__ import annotations

import http.server
import json
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Env, airlock

SECRET = "sk-real-secret-do-not-leak-0123456789"

CLIENT = """\
import json, os, sys, urllib.request
def call(url, body=None):
    request = urllib.request.Request(url, data=body, headers={"x-api-key": os.environ.get("ANTHROPIC_API_KEY", "")})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status
print(call(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", b'{"model": "x"}'))
print(call(sys.argv[1]))
"""


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that remembers the requests it received."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else b""
                recorder.seen.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode(),
                    }
                )
                payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    model, other = Recorder(), Recorder()
    yield model, other
    model.stop()
    other.stop()


def test_the_sandbox_holds_only_a_placeholder(project: Path, hermetic: Env, servers) -> None:
    model, other = servers
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input=SECRET + "\n")
    assert stored.returncode == 0, stored.stderr
    listed = airlock("--engine", "bwrap", "secret", "ls", cwd=project)
    assert "anthropic  stored" in listed.stdout and SECRET not in listed.stdout
    env = {
        "AIRLOCK_SERVICE_URLS": f"anthropic=http://127.0.0.1:{model.port}",
        "AIRLOCK_EGRESS_RESOLVE": "registry.npmjs.org=127.0.0.1",
    }
    head, tail = SECRET[:12], SECRET[12:]  # never spelled whole on a command line the scan itself could match
    leak_scan = (
        f'pat={head}; pat="$pat"{tail}; '
        'grep -rsl "$pat" /home/agent /run /tmp /proc/[0-9]*/environ /proc/[0-9]*/cmdline . > leaks.txt; env > env.txt'
    )
    script = f"python3 -c {shlex.quote(CLIENT)} http://registry.npmjs.org:{other.port}/ > statuses.txt && {leak_scan}"
    dry = airlock(
        "--engine",
        "bwrap",
        "--agent",
        "shell",
        "--name",
        "cred",
        "--dry-run",
        "up",
        "--",
        "-c",
        script,
        cwd=project,
        env=env,
    )
    assert SECRET not in dry.stdout + dry.stderr
    result = airlock(
        "--engine", "bwrap", "--agent", "shell", "--name", "cred", "up", "--", "-c", script, cwd=project, env=env
    )
    assert result.returncode == 0, result.stderr
    box = hermetic.home / ".local" / "share" / "git-airlock" / "sandboxes" / "cred"
    work = box / "upper" if (box / "upper").is_dir() else box / "clone"
    assert (work / "statuses.txt").read_text().split() == ["200", "200"]
    assert (work / "leaks.txt").read_text() == ""
    sandbox_env = (work / "env.txt").read_text()
    assert "ANTHROPIC_API_KEY=airlock-placeholder-credential" in sandbox_env and SECRET not in sandbox_env
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:3128/airlock/anthropic" in sandbox_env

    (request,) = model.seen
    assert request["path"] == "/v1/messages" and request["body"] == '{"model": "x"}'
    assert request["headers"]["x-api-key"] == SECRET
    (elsewhere,) = other.seen
    assert SECRET not in json.dumps(elsewhere), "a credential must never go to another host"
    assert elsewhere["headers"]["x-api-key"] == "airlock-placeholder-credential"
    for config in Path("/tmp").glob("git-airlock-*/*/egress.json"):
        assert SECRET not in config.read_text()
    log = (hermetic.home / ".local" / "state" / "git-airlock" / "net" / "cred.jsonl").read_text()
    assert SECRET not in log and '"credential": "anthropic"' in log


def test_secret_commands_on_sbx_use_sbx_secret(project: Path, hermetic: Env) -> None:
    stored = airlock("--engine", "sbx", "secret", "set", "anthropic", cwd=project, input=SECRET + "\n")
    assert stored.returncode == 0, stored.stderr
    assert ["secret", "set", "-g", "anthropic"] in hermetic.sbx_calls()
    assert (
        SECRET not in json.dumps(hermetic.sbx_calls()) and SECRET not in (hermetic.sbx_state / "state.json").read_text()
    )
    dry = airlock("--engine", "sbx", "--dry-run", "secret", "set", "anthropic", cwd=project, input=SECRET)
    assert dry.stdout.strip() == "sbx secret set -g anthropic"


def test_secret_file_is_private_and_removable(project: Path, hermetic: Env) -> None:
    assert airlock("--engine", "bwrap", "secret", "set", "openai", cwd=project, input="sk-x\n").returncode == 0
    store = hermetic.home / ".config" / "git-airlock" / "secrets.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert oct(store.parent.stat().st_mode & 0o777) == "0o700"
    assert airlock("--engine", "bwrap", "secret", "rm", "openai", cwd=project).returncode == 0
    missing = airlock("--engine", "bwrap", "secret", "rm", "openai", cwd=project)
    assert missing.returncode == 1 and "no stored credential for 'openai'" in missing.stderr
    unknown = airlock("--engine", "bwrap", "secret", "set", "nosuch", cwd=project, input="x\n")
    assert unknown.returncode == 1 and "hint: known services: anthropic, openai" in unknown.stderr


def test_presets_list_hosts_and_custom_presets(project: Path) -> None:
    import subprocess

    subprocess.run(
        ["git", "-C", str(project), "config", "airlock.preset.corp", "pkgs.corp.example,*.corp.example"], check=True
    )
    out = airlock("presets", cwd=project).stdout
    assert "claude     agent   api.anthropic.com" in out
    assert "npm        tooling registry.npmjs.org, *.npmjs.org" in out
    assert "corp       custom  pkgs.corp.example, *.corp.example" in out
    assert "anthropic  credential $ANTHROPIC_API_KEY -> x-api-key header to https://api.anthropic.com only" in out
