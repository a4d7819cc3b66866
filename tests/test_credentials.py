"""Credentials stay on the host: the egress gate puts them on requests to their own API host only."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import subprocess
import sys
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


class SecretService:
    """A real OS keyring: gnome-keyring's Secret Service on a private D-Bus session bus, unlocked."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(home)}
        self.bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        self.address = self.bus.stdout.readline().strip()
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        self.daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        self.daemon.stdin.write("test-keyring-password")  # --unlock reads the password until end of input
        self.daemon.stdin.close()
        self.daemon.stdout.read()  # closed once the daemon is on the bus and unlocked

    def read(self, service: str) -> str:
        """What the keyring holds for ``service``, asked through the keyring library in a fresh process."""
        code = f"import keyring; print(keyring.get_password('git-airlock', {service!r}) or '')"
        return subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True).stdout.strip()

    def stop(self) -> None:
        for process in (self.daemon, self.bus):
            process.terminate()
            process.wait(10)


@pytest.fixture
def secret_service(hermetic: Env) -> Iterator[SecretService]:
    service = SecretService(hermetic.home)
    hermetic.mp.setenv("DBUS_SESSION_BUS_ADDRESS", service.address)
    yield service
    service.stop()


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    model, other = Recorder(), Recorder()
    yield model, other
    model.stop()
    other.stop()


@pytest.mark.parametrize("store", ["file", "keyring"])
def test_the_sandbox_holds_only_a_placeholder(project: Path, hermetic: Env, servers, request, store: str) -> None:
    model, other = servers
    keyring = request.getfixturevalue("secret_service") if store == "keyring" else None
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input=SECRET + "\n")
    assert stored.returncode == 0, stored.stderr
    listed = airlock("--engine", "bwrap", "secret", "ls", cwd=project)
    kept = "stored (OS keyring)" if keyring else "stored (file)"
    assert f"anthropic  {kept}" in listed.stdout and SECRET not in listed.stdout
    if keyring:  # the gate below reads it from there: nothing on disk holds it in clear
        assert keyring.read("anthropic") == SECRET
        files = [path for path in hermetic.home.rglob("*") if path.is_file()]
        assert files and not [path for path in files if SECRET.encode() in path.read_bytes()]
    env = {
        "AIRLOCK_SERVICE_URLS": f"anthropic=http://127.0.0.1:{model.port}",
        "AIRLOCK_EGRESS_RESOLVE": "registry.npmjs.org=127.0.0.1",
    }
    head, tail = SECRET[:12], SECRET[12:]  # never spelled whole on a command line the scan itself could match
    leak_scan = (
        f'pat={head}; pat="$pat"{tail}; '
        'grep -rsl "$pat" /home/agent /run /tmp /proc/[0-9]*/environ /proc/[0-9]*/cmdline . > leaks.txt; env > env.txt'
    )
    # the npm preset allows ports 80 and 443 only: a custom preset names the loopback server's
    subprocess.run(
        ["git", "-C", str(project), "config", "airlock.preset.loopback", f"registry.npmjs.org:{other.port}"], check=True
    )
    script = f"python3 -c {shlex.quote(CLIENT)} http://registry.npmjs.org:{other.port}/ > statuses.txt && {leak_scan}"
    if keyring:  # the keyring's bus, which would hand an unlocked secret to the user's processes, is out of reach
        address = keyring.address.split(",")[0].partition("=")
        bus = ("@" if address[0] == "unix:abstract" else "") + address[2]
        probe = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1].replace('@', chr(0), 1))"
        script += f"; python3 -c {shlex.quote(probe)} {shlex.quote(bus)} 2>/dev/null && echo reached > bus.txt"
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
    assert not (work / "bus.txt").exists()
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
    assert unknown.returncode == 1 and "hint: known services: anthropic, claude, openai" in unknown.stderr


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


def test_keyring_credentials_move_and_go(project: Path, hermetic: Env, secret_service: SecretService) -> None:
    def run(*args: str, value: str | None = None):
        return airlock("--engine", "bwrap", "secret", *args, cwd=project, input=value)

    assert "in the OS keyring" in run("set", "openai", value="sk-one\n").stderr
    store = hermetic.home / ".config" / "git-airlock" / "secrets.json"
    assert json.loads(store.read_text()) == {"openai": {"store": "keyring"}}
    assert run("set", "--store", "file", "openai", value="sk-two\n").returncode == 0
    assert secret_service.read("openai") == ""  # moved to the file: the keyring keeps no stale copy
    assert json.loads(store.read_text()) == {"openai": "sk-two"}
    assert run("set", "--store", "keyring", "openai", value="sk-three\n").returncode == 0
    assert secret_service.read("openai") == "sk-three" and "sk-two" not in store.read_text()
    assert run("rm", "openai").returncode == 0
    assert secret_service.read("openai") == "" and json.loads(store.read_text()) == {}


def test_doctor_says_where_credentials_are_kept(project: Path, hermetic: Env, request) -> None:
    without = airlock("--engine", "bwrap", "doctor", cwd=project).stdout
    assert "credentials      no OS keyring answers: `secret set` keeps keys in" in without
    request.getfixturevalue("secret_service")
    with_keyring = airlock("--engine", "bwrap", "doctor", cwd=project).stdout
    assert "OK    credentials      OS keyring (SecretService)" in with_keyring


def test_without_an_os_keyring_credentials_go_to_the_file(project: Path, hermetic: Env) -> None:
    forced = airlock("--engine", "bwrap", "secret", "set", "--store", "keyring", "openai", cwd=project, input="")
    assert forced.returncode == 1 and "no OS keyring answers here" in forced.stderr
    assert "hint: use `--store file`" in forced.stderr
    auto = airlock("--engine", "bwrap", "secret", "set", "openai", cwd=project, input="sk-file\n")
    assert auto.returncode == 0 and "secrets.json" in auto.stderr
    dry = airlock("--engine", "bwrap", "--dry-run", "secret", "set", "openai", cwd=project, input="sk-never\n")
    assert "OS keyring if one answers, else secrets.json" in dry.stdout and "sk-never" not in dry.stdout


def _sandbox_env(project: Path) -> dict[str, str]:
    """The variables a bwrap sandbox would get, read from the dry run's bwrap command line."""
    dry = airlock("--engine", "bwrap", "--agent", "claude", "--name", "envs", "--dry-run", "up", cwd=project)
    argv = shlex.split(dry.stdout.splitlines()[-1])
    return {argv[i + 1]: argv[i + 2] for i, arg in enumerate(argv) if arg == "--setenv"}


def test_a_claude_subscription_token_gets_its_own_endpoint(project: Path) -> None:
    def store(service: str, value: str) -> None:
        stored = airlock("--engine", "bwrap", "secret", "set", "--store", "file", service, cwd=project, input=value)
        assert stored.returncode == 0, stored.stderr

    store("claude", "sk-ant-oat-token\n")
    env = _sandbox_env(project)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3128/airlock/claude"
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == "airlock-placeholder-credential" and "ANTHROPIC_API_KEY" not in env
    store("anthropic", "sk-ant-api-key\n")  # an API key, where both are held, takes the base URL
    env = _sandbox_env(project)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3128/airlock/anthropic"
    assert env["ANTHROPIC_API_KEY"] == "airlock-placeholder-credential" and "CLAUDE_CODE_OAUTH_TOKEN" not in env
