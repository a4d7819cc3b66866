"""The bubblewrap engine, for real: isolation asserted from outside, then the whole loop."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from conftest import FAKES, Env, airlock, data_dir, git, run_in_sandbox, sandbox_file, snapshot


@pytest.fixture
def tcp_server() -> Iterator[int]:
    """A real TCP server on the host's loopback that answers 'hello'."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"hello\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


PROBE = """\
{{
  echo "write-host: $(echo x 2>/dev/null > {repo}/planted && echo ok || echo refused)"
  echo "secret: $(cat {home}/.ssh/id_test 2>/dev/null || echo unreadable)"
  echo "home-visible: $(ls {home} >/dev/null 2>&1 && echo yes || echo no)"
  echo "aws: ${{AWS_SECRET_ACCESS_KEY:-absent}}"
  connect='import socket; print(socket.create_connection(("127.0.0.1", {port}), timeout=2).recv(5).decode())'
  echo "tcp: $(python3 -c "$connect" 2>/dev/null || echo refused)"
  echo "uid-map: $(cat /proc/self/uid_map | tr -s ' ')"
}} > probe.txt
"""


def probe(project: Path, hermetic: Env, name: str, port: int, *flags: str) -> dict[str, str]:
    script = PROBE.format(repo=shlex.quote(str(project)), home=shlex.quote(str(hermetic.home)), port=port)
    result = run_in_sandbox(project, name, script, *flags, env={"AWS_SECRET_ACCESS_KEY": "planted-aws-secret"})
    assert result.returncode == 0, result.stderr
    text = sandbox_file(hermetic, name, "probe.txt").read_text()
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_isolation_seen_from_outside(project: Path, hermetic: Env, tcp_server: int) -> None:
    (hermetic.home / ".ssh").mkdir()
    (hermetic.home / ".ssh" / "id_test").write_text("PRIVATE KEY\n")
    before = snapshot(project)
    found = probe(project, hermetic, "iso", tcp_server)
    assert found["write-host"] == "refused"
    assert found["secret"] == "unreadable"
    assert found["home-visible"] == "no"
    assert found["aws"] == "absent"
    assert found["tcp"] == "refused"
    assert snapshot(project) == before
    assert not (project / "planted").exists()


def test_allow_all_is_an_explicit_choice(project: Path, hermetic: Env, tcp_server: int) -> None:
    """The control for the network check: with allow-all the same probe reaches the server."""
    hermetic.mp.setenv("GLOBAL_NETWORK_POLICY", "allow-all")
    assert probe(project, hermetic, "open", tcp_server)["tcp"] == "hello"


def test_sandboxes_do_not_see_each_other_and_stop_leaves_nothing(project: Path, hermetic: Env) -> None:
    a_clone = data_dir(hermetic, "a") / "clone"
    agent = subprocess.Popen(
        [
            "git",
            "airlock",
            "--engine",
            "bwrap",
            "--agent",
            "shell",
            "--name",
            "a",
            "up",
            "--",
            "-c",
            "echo ready; exec sleep 317",
        ],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout.readline().strip() == "ready"
        script = f"""\
{{
  echo "other-clone: $(ls {shlex.quote(str(a_clone))} >/dev/null 2>&1 && echo visible || echo hidden)"
  echo "sleepers: $(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'slee[p] 317')"
}} > probe.txt
"""
        assert run_in_sandbox(project, "b", script).returncode == 0
        found = dict(line.split(": ", 1) for line in sandbox_file(hermetic, "b", "probe.txt").read_text().splitlines())
        assert found["other-clone"] == "hidden"
        assert found["sleepers"] == "0"
        status = airlock("--engine", "bwrap", "--name", "a", "status", cwd=project).stdout
        assert "sandbox:  a (running)" in status and "bwrap pid" in status
        stopped = airlock("--engine", "bwrap", "--name", "a", "stop", cwd=project)
        assert stopped.returncode == 0, stopped.stderr
        assert agent.wait(timeout=30) is not None
    finally:
        airlock("--engine", "bwrap", "--name", "a", "stop", cwd=project)
        agent.kill()
        agent.communicate()
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"GIT_AIRLOCK_SANDBOX=a/" in environ or b"sleep\x00317" in cmdline:
            leftovers.append(pid)
    assert leftovers == []
    assert (
        "sandbox:  a (exists but stopped)" in airlock("--engine", "bwrap", "--name", "a", "status", cwd=project).stdout
    )


def test_full_loop(project: Path, hermetic: Env) -> None:
    script = "echo \"print('from the sandbox')\" > app.py && git commit -q -am 'agent: rewrite app'"
    assert run_in_sandbox(project, "loop", script).returncode == 0
    assert (project / "app.py").read_text() == "print('v1')\n"
    for args in (("fetch",), ("diff",), ("log",)):
        result = airlock("--engine", "bwrap", "--name", "loop", *args, cwd=project)
        assert result.returncode == 0, result.stderr
    assert "+print('from the sandbox')" in airlock("--engine", "bwrap", "--name", "loop", "diff", cwd=project).stdout
    git(project, "config", "difftool.ok.cmd", "true")
    review = airlock("--engine", "bwrap", "--name", "loop", "review", "--tool", "ok", "--mark", cwd=project)
    assert review.returncode == 0, review.stderr
    merged = airlock("--engine", "bwrap", "--name", "loop", "merge", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert (project / "app.py").read_text() == "print('from the sandbox')\n"
    sandbox_id = json.loads((data_dir(hermetic, "loop") / "meta.json").read_text())["id"]
    key = sha256(f"loop/{sandbox_id}".encode()).hexdigest()[:12]
    gate_dir = Path(tempfile.gettempdir(), f"git-airlock-{os.getuid()}", key)
    assert (gate_dir / "egress.json").is_file()
    removed = airlock("--engine", "bwrap", "--name", "loop", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert not data_dir(hermetic, "loop").exists()
    assert not gate_dir.exists()
    assert git(project, "config", "--get", "remote.sandbox-loop.url", check=False) == ""
    assert git(project, "rev-parse", "refs/sandboxes/loop/main").strip() == git(project, "rev-parse", "main").strip()


def test_home_persists_across_stop_and_up(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "hm", "echo logged-in > ~/.agent-login").returncode == 0
    assert airlock("--engine", "bwrap", "--name", "hm", "stop", cwd=project).returncode == 0
    assert run_in_sandbox(project, "hm", "cat ~/.agent-login > seen.txt").returncode == 0
    assert sandbox_file(hermetic, "hm", "seen.txt").read_text() == "logged-in\n"
    assert not (hermetic.home / ".agent-login").exists()


def test_uncommitted_work_is_reported_and_committable(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "wip", "echo draft > draft.txt").returncode == 0
    fetched = airlock("--engine", "bwrap", "--name", "wip", "fetch", cwd=project)
    assert "the sandbox has 1 uncommitted change(s) that a fetch does not bring: draft.txt" in fetched.stderr
    assert "1 uncommitted change(s)" in airlock("--engine", "bwrap", "--name", "wip", "status", cwd=project).stdout
    committed = airlock("--engine", "bwrap", "--name", "wip", "commit", "-m", "keep the draft", cwd=project)
    assert committed.returncode == 0, committed.stderr
    assert airlock("--engine", "bwrap", "--name", "wip", "fetch", cwd=project).returncode == 0
    assert git(project, "log", "-1", "--format=%s", "sandbox-wip/main").strip() == "keep the draft"


def test_clone_config_is_read_only_and_a_planted_commondir_leads_nowhere(project: Path, hermetic: Env) -> None:
    script = """\
{ git config core.alternateRefsCommand 'touch /tmp/pwned' && echo config-written || echo config-refused; } > probe.txt
echo ../../evil > .git/commondir
"""
    assert run_in_sandbox(project, "tamper", script).returncode == 0
    assert sandbox_file(hermetic, "tamper", "probe.txt").read_text().strip() == "config-refused"
    refs = git(project, "for-each-ref")
    fetched = airlock("--engine", "bwrap", "--name", "tamper", "fetch", cwd=project)
    assert fetched.returncode == 1
    assert "the agent planted" in fetched.stderr and "commondir (it points git elsewhere)" in fetched.stderr
    assert "characters)" in fetched.stderr  # the long upload-pack command is named, not printed whole
    assert git(project, "for-each-ref") == refs


def test_dry_run_prints_the_bwrap_command(project: Path, hermetic: Env) -> None:
    result = airlock("--engine", "bwrap", "--name", "dr", "--dry-run", "up", "--", "--model", "x", cwd=project)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    argv = shlex.split(last)
    assert argv[1:3] == ["-m", "git_airlock.egress.supervise"] and argv[4] == "--"  # the egress gate (balanced)
    argv = argv[5:]  # then the sandbox's own user namespace, its layers mounted, before bwrap
    assert os.path.realpath(argv[0]) == os.path.realpath(sys.executable) and argv[1:3] == ["-I", "-S"]
    assert argv[3].endswith("engines/bwrap/enter.py")
    options, argv = argv[4 : argv.index("--", 4)], argv[argv.index("--", 4) + 1 :]
    host_uids = [options[i + 2] for i, option in enumerate(options) if option == "--uid-map"]
    assert host_uids and "0" not in host_uids  # nothing of it is root on the host
    mounted = [options[i + 2] for i, option in enumerate(options) if option == "--overlay"]
    assert str(data_dir(hermetic, "dr") / "merged") in mounted  # its working tree
    assert str(data_dir(hermetic, "dr") / "system" / "mnt" / "usr") in mounted  # its own /usr
    assert argv[:2] == ["bwrap", "--die-with-parent"]
    assert "--unshare-net" in argv and "--clearenv" in argv and "--unshare-user" not in argv
    binds = [argv[i + 1 : i + 3] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")]
    source = str(data_dir(hermetic, "dr") / "source") if os.getuid() == 0 else str(project)  # root: an id-mapped view
    assert [source, str(project)] in binds and [source, "/run/sandbox/source"] in binds
    assert [str(data_dir(hermetic, "dr") / "system" / "mnt" / "usr"), "/usr"] in binds
    assert argv[-9:] == [
        "--",
        "python3",
        "/run/airlock-handoff.py",
        "3128",
        "/run/airlock/egress.sock",
        "--",
        "claude",
        "--model",
        "x",
    ]
    assert not data_dir(hermetic, "dr").exists()
    assert not (hermetic.home / ".local" / "share" / "git-airlock").exists(), "a dry run creates nothing"
    assert git(project, "remote") == ""


def test_auto_engine_picks_bwrap_without_sbx(project: Path, hermetic: Env) -> None:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != FAKES)
    result = airlock("--name", "auto", "status", cwd=project, env={"PATH": path})
    assert "engine:   bwrap (sbx is not installed; bubblewrap is)" in result.stdout
    doctor = airlock("doctor", cwd=project, env={"PATH": path})
    assert "OK    engine           bwrap (sbx is not installed; bubblewrap is)" in doctor.stdout
    assert "OK    namespaces" in doctor.stdout


def test_credential_looking_pass_env_is_refused(project: Path, hermetic: Env) -> None:
    result = run_in_sandbox(project, "pe", "true", env={"AIRLOCK_PASS_ENV": "CI,GITHUB_TOKEN"})
    assert result.returncode == 1
    assert "AIRLOCK_PASS_ENV names GITHUB_TOKEN, which look like credentials" in result.stderr
    passed = run_in_sandbox(project, "pe", 'echo "$CI" > ci.txt', env={"AIRLOCK_PASS_ENV": "CI", "CI": "yes"})
    assert passed.returncode == 0
    assert sandbox_file(hermetic, "pe", "ci.txt").read_text() == "yes\n"


def test_plain_checkout_when_no_overlay_can_be_mounted(project: Path, hermetic: Env, tmp_path: Path) -> None:
    """overlay options cannot name a path with a comma, so such a data directory gets a full private checkout."""
    data = tmp_path / "data,dir"
    hermetic.mp.setenv("XDG_DATA_HOME", str(data))
    script = "echo plain > app.py && git commit -q -am 'agent: plain' && echo draft > draft.txt"
    assert run_in_sandbox(project, "pl", script).returncode == 0
    box = data / "git-airlock" / "sandboxes" / "pl"
    assert not (box / "upper").exists()
    assert (box / "clone" / "draft.txt").read_text() == "draft\n"
    fetched = airlock("--engine", "bwrap", "--name", "pl", "fetch", cwd=project)
    assert "1 uncommitted change(s) that a fetch does not bring: draft.txt" in fetched.stderr
    assert git(project, "log", "-1", "--format=%s", "sandbox-pl/main").strip() == "agent: plain"


def test_overlay_sandboxes_share_one_checkout(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "o1", "echo one > mine.txt").returncode == 0
    peek = "cat mine.txt > seen.txt 2>/dev/null || echo absent > seen.txt"
    assert run_in_sandbox(project, "o2", peek).returncode == 0
    checkouts = list((hermetic.home / ".local" / "share" / "git-airlock" / "checkouts").iterdir())
    assert len(checkouts) == 1
    assert (checkouts[0] / "tree" / "app.py").read_text() == "print('v1')\n"
    assert not (checkouts[0] / "tree" / "mine.txt").exists(), "a sandbox never writes the shared checkout"
    assert sandbox_file(hermetic, "o2", "seen.txt").read_text() == "absent\n"


def test_missing_agent_cli_is_a_clear_error(project: Path, hermetic: Env) -> None:
    result = airlock(
        "--engine",
        "bwrap",
        "--agent",
        "codex",
        "--name",
        "nocli",
        "up",
        cwd=project,
        env={"PATH": "/usr/bin:/bin:" + os.path.dirname(shutil.which("git-airlock"))},
    )
    assert result.returncode == 1
    assert "`codex` is not installed where the sandbox can run it" in result.stderr
    assert "`git airlock agents install codex` installs it once for every sandbox" in result.stderr


def test_lockdown_and_unlock_set_the_sandbox_network(project: Path, hermetic: Env, tcp_server: int) -> None:
    hermetic.mp.setenv("GLOBAL_NETWORK_POLICY", "allow-all")
    assert probe(project, hermetic, "net", tcp_server)["tcp"] == "hello"
    locked = airlock("--engine", "bwrap", "--name", "net", "lockdown", cwd=project)
    assert locked.returncode == 0, locked.stderr
    assert "only 12 host rule(s) reachable, from its next start" in locked.stderr
    assert probe(project, hermetic, "net", tcp_server)["tcp"] == "refused"
    assert airlock("--engine", "bwrap", "--name", "net", "unlock", cwd=project).returncode == 0
    assert probe(project, hermetic, "net", tcp_server)["tcp"] == "hello"


FETCH = """\
import sys, urllib.request, urllib.error
for url in sys.argv[1:]:
    try:
        print(urllib.request.urlopen(url, timeout=10).status)
    except urllib.error.HTTPError as error:
        print(error.code)
    except OSError as error:
        print("error", error)
"""


def test_balanced_network_goes_through_the_egress_gate(project: Path, hermetic: Env) -> None:
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        names = ("registry.npmjs.org", "cdn.npmjs.org", "evil-npmjs.org", "example.com")
        resolve = ",".join(f"{name}=127.0.0.1" for name in names)
        urls = " ".join(f"http://{name}:{port}/" for name in names)
        script = f"python3 -c {shlex.quote(FETCH)} {urls} > fetched.txt"
        # the npm preset (*.npmjs.org, registry.npmjs.org) names no port: 80 and 443 only;
        # a custom preset that names the loopback server's port lets one host through there
        git(project, "config", "airlock.preset.loopback", f"registry.npmjs.org:{port}")
        result = run_in_sandbox(project, "gate", script, env={"AIRLOCK_EGRESS_RESOLVE": resolve})
        assert result.returncode == 0, result.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert sandbox_file(hermetic, "gate", "fetched.txt").read_text().split("\n")[:4] == ["200", "403", "403", "403"]
    net = airlock("--engine", "bwrap", "--name", "gate", "net", cwd=project).stdout
    rows = {line.split()[0]: line.split()[1:3] for line in net.splitlines()[1:]}
    assert rows[f"registry.npmjs.org:{port}"] == ["1", "0"]
    assert rows[f"cdn.npmjs.org:{port}"] == ["0", "1"]
    assert rows[f"evil-npmjs.org:{port}"] == ["0", "1"]
    assert rows[f"example.com:{port}"] == ["0", "1"]


def test_the_sandbox_sees_only_the_gates_socket_and_cannot_change_it(project: Path, hermetic: Env) -> None:
    script = (
        "ls -A /run/airlock > listed.txt; "
        "(touch /run/airlock/planted || rm -f /run/airlock/egress.sock || ln -s / /run/airlock/x) 2> /dev/null; "
        "ls -A /run/airlock > after.txt; cat /run/airlock/../egress.json > config.txt 2>&1; true"
    )
    assert run_in_sandbox(project, "ro", script).returncode == 0
    assert sandbox_file(hermetic, "ro", "listed.txt").read_text().split() == ["egress.sock"]
    assert sandbox_file(hermetic, "ro", "after.txt").read_text().split() == ["egress.sock"]
    assert '"allow"' not in sandbox_file(hermetic, "ro", "config.txt").read_text()


def test_net_follow_streams_new_connections(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "fw", "true").returncode == 0
    follow = subprocess.Popen(
        ["git", "airlock", "--engine", "bwrap", "--name", "fw", "net", "--follow"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fetch = f"python3 -c {shlex.quote(FETCH)} http://blocked.example.test/"
        assert run_in_sandbox(project, "fw", fetch).returncode == 0
        line = follow.stdout.readline()
        assert line.split()[:2] == ["blocked", "blocked.example.test:80"]
    finally:
        follow.terminate()
        follow.communicate(timeout=30)


def test_status_and_doctor_describe_the_bwrap_sandbox(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "st", "true").returncode == 0
    status = airlock("--engine", "bwrap", "--name", "st", "status", cwd=project).stdout
    assert "(overlay working tree; the agent's: look with `git airlock shell`, never with git there)" in status
    assert "network: the configured policy" in status
    assert airlock("--engine", "bwrap", "--name", "st", "lockdown", cwd=project).returncode == 0
    assert "network: lockdown" in airlock("--engine", "bwrap", "--name", "st", "status", cwd=project).stdout
    doctor = airlock("--engine", "bwrap", "doctor", cwd=project).stdout
    assert "OK    overlay          copy-on-write working trees" in doctor


def test_a_host_without_python3_is_told_before_anything_is_made(
    project: Path, hermetic: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sandbox starts its agent with the system's python3 (the gate's handoff): without one in /usr,
    `up` says so and makes nothing, instead of a sandbox that dies at its first command."""
    from git_airlock.agents import AGENTS
    from git_airlock.engines.base import SandboxSpec
    from git_airlock.engines.bwrap import start
    from git_airlock.engines.bwrap.layout import Paths
    from git_airlock.errors import AirlockError

    found = start._on_sandbox_path
    monkeypatch.setattr(start, "_on_sandbox_path", lambda command, home: command != "python3" and found(command, home))
    spec = SandboxSpec("nopy", AGENTS["shell"], str(project))
    with pytest.raises(AirlockError) as refused:
        start.check_installed(spec, Paths("nopy"))
    assert "the sandbox has no python3 in /usr" in str(refused.value)
    assert "apt-get install python3" in refused.value.hint
    assert not Paths("nopy").exists()
