"""The egress proxy: rules, both request forms, logging, and hostile clients, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from git_airlock.egress import handoff
from git_airlock.egress import tunnel as tunnel_module
from git_airlock.egress.proxy import MAX_LISTENERS, Proxy
from git_airlock.egress.rules import Rules

ALLOW = ["allowed.test", "*.npmjs.org", "api.example:443"]


class Upstream:
    """A real loopback server: echoes after CONNECT, answers plain HTTP, or streams a lot of data."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    @staticmethod
    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                first = conn.recv(65536)
                if first.startswith(b"GET /big"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                    while True:
                        conn.sendall(b"x" * 65536)
                elif first.startswith(b"GET "):
                    body = b"upstream saw: " + first.split(b"\r\n")[0]
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    while first:
                        conn.sendall(first)
                        first = conn.recv(65536)
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


class Running:
    """A Proxy served on 127.0.0.1 by an asyncio loop in a thread (and on ``control``, a Unix
    socket taking listeners handed over, as the gate's socket inside a sandbox)."""

    def __init__(self, upstream: Upstream, control: str | None = None) -> None:
        self.entries: list[dict] = []
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        async def main() -> None:
            self.proxy = Proxy("box", Rules(ALLOW), self.entries.append, lambda host: "127.0.0.1")
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.port = self.listener.getsockname()[1]
            self.serving = [asyncio.ensure_future(self.proxy.serve(self.listener))]
            if control:
                self.control = socket.socket(socket.AF_UNIX)
                self.control.bind(control)
                self.control.listen()
                self.serving.append(asyncio.ensure_future(self.proxy.serve(self.control, handoff=True)))
            started.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(main(), self.loop).result(10)
        started.wait(10)
        self.upstream = upstream

    def wait_idle(self) -> None:
        async def idle() -> None:
            await self.proxy.idle.wait()

        asyncio.run_coroutine_threadsafe(idle(), self.loop).result(30)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def close(self) -> None:
        self.wait_idle()

        async def shutdown() -> None:
            for task in self.serving:
                task.cancel()
            await asyncio.gather(*self.serving, return_exceptions=True)
            await self.proxy.close()
            self.listener.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def proxy() -> Iterator[Running]:
    upstream = Upstream()
    running = Running(upstream)
    yield running
    running.close()
    upstream.close()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def tunnel(proxy: Running, host: str, payload: bytes = b"ping") -> tuple[bytes, bytes]:
    with proxy.connect() as sock:
        sock.sendall(f"CONNECT {host}:{proxy.upstream.port} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = read_head(sock)
        echoed = b""
        if head.startswith(b"HTTP/1.1 200"):
            sock.sendall(payload)
            while len(echoed) < len(payload):
                echoed += sock.recv(4096)
        return head, echoed


def test_rules_exact_wildcard_port_and_deny() -> None:
    rules = Rules(["registry.npmjs.org", "*.npmjs.org", "api.example:443"], deny=["bad.npmjs.org"])
    assert rules.allows("registry.npmjs.org", 443)
    assert rules.allows("cdn.npmjs.org", 80)
    assert not rules.allows("npmjs.org", 443), "a wildcard covers sub-domains only"
    assert not rules.allows("evil-npmjs.org", 443)
    assert not rules.allows("npmjs.org.evil.com", 443)
    assert rules.allows("api.example", 443) and not rules.allows("api.example", 80)
    assert not rules.allows("bad.npmjs.org", 443), "deny wins over allow"
    assert Rules([], deny=["x.test"], allow_all=True).allows("anything.test", 1)


def test_connect_allowed_blocked_and_logged(proxy: Running) -> None:
    head, echoed = tunnel(proxy, "allowed.test")
    assert head.startswith(b"HTTP/1.1 200") and echoed == b"ping"
    head, _ = tunnel(proxy, "blocked.test")
    assert head.startswith(b"HTTP/1.1 403")
    head, _ = tunnel(proxy, "evil-npmjs.org")
    assert head.startswith(b"HTTP/1.1 403")
    head, echoed = tunnel(proxy, "registry.npmjs.org")
    assert echoed == b"ping"
    proxy.wait_idle()
    by_host = {e["host"]: e for e in proxy.entries}  # a tunnel is logged when it closes, so order varies
    assert {host: e["action"] for host, e in by_host.items()} == {
        "allowed.test": "allowed",
        "blocked.test": "blocked",
        "evil-npmjs.org": "blocked",
        "registry.npmjs.org": "allowed",
    }
    assert by_host["allowed.test"]["sent"] == 4 and by_host["allowed.test"]["received"] == 4
    assert by_host["allowed.test"]["sandbox"] == "box" and by_host["allowed.test"]["port"] == proxy.upstream.port


def test_plain_http_is_forwarded_in_origin_form(proxy: Running) -> None:
    with proxy.connect() as sock:
        sock.sendall(
            f"GET http://allowed.test:{proxy.upstream.port}/path?q=1 HTTP/1.1\r\n"
            "Host: allowed.test\r\nProxy-Authorization: secret\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"upstream saw: GET /path?q=1 HTTP/1.1")


@pytest.mark.parametrize(
    "line",
    [
        b"GARBAGE\r\n\r\n",
        b"CONNECT nohost HTTP/1.1\r\n\r\n",
        b"CONNECT allowed.test:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT allowed.test:443 SPDY/9\r\n\r\n",
        b"GET /relative HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
        b"CONNECT a b c d\r\n\r\n",
        b"\xff\xfe\x00\r\n\r\n",
        # smuggling shapes: each would let some server read a different request than the gate did
        b"GET http://allowed.test/a\tHTTP/1.1\nHost: evil.test\n\n HTTP/1.1\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nHost : evil.test\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nX-A: 1\r\n Host: evil.test\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nX-A: 1\nHost: evil.test\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nX-A: 1\x00\r\n\r\n",
        b"G\x01T http://allowed.test/ HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_requests_get_400_and_the_proxy_goes_on(proxy: Running, line: bytes) -> None:
    with proxy.connect() as sock:
        sock.sendall(line)
        assert read_head(sock).startswith(b"HTTP/1.1 400")
    assert tunnel(proxy, "allowed.test")[1] == b"ping"


def test_oversized_head_is_refused(proxy: Running) -> None:
    with proxy.connect() as sock:
        sock.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 431")


def test_slow_client_is_dropped(proxy: Running) -> None:
    proxy.proxy.head_timeout = 0.2
    with proxy.connect() as sock:
        sock.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 408")


def test_client_leaving_mid_stream_does_not_hurt(proxy: Running) -> None:
    for _ in range(5):
        with proxy.connect() as sock:
            sock.sendall(f"GET http://allowed.test:{proxy.upstream.port}/big HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(65536)
    proxy.wait_idle()
    assert tunnel(proxy, "allowed.test")[1] == b"ping"


def test_200_concurrent_connections_and_no_leaked_descriptors(proxy: Running) -> None:
    tunnel(proxy, "allowed.test")
    proxy.wait_idle()
    before = len(os.listdir("/proc/self/fd"))
    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(lambda i: tunnel(proxy, "allowed.test", b"n%d" % i), range(200)))
    assert all(echo == b"n%d" % i for i, (_, echo) in enumerate(results))
    with ThreadPoolExecutor(max_workers=50) as pool:  # hostile ones too
        list(pool.map(lambda _: _garbage(proxy), range(50)))
    proxy.wait_idle()
    assert proxy.proxy.open_connections == 0
    kept_pipes = 2 * len(proxy.proxy.pipes.idle)  # empty pipes kept for the next tunnels, bounded
    assert kept_pipes <= 2 * proxy.proxy.pipes.limit
    assert len(os.listdir("/proc/self/fd")) <= before + 2 + kept_pipes


def _garbage(proxy: Running) -> None:
    with proxy.connect() as sock:
        sock.sendall(b"\x00" * 100 + b"\r\n\r\n")
        read_head(sock)


def test_a_stalling_client_does_not_hold_up_others(proxy: Running) -> None:
    proxy.proxy.head_timeout = 30
    stalled = [proxy.connect() for _ in range(20)]
    try:
        for sock in stalled:
            sock.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n")  # never finishes its head
        assert tunnel(proxy, "allowed.test")[1] == b"ping"
    finally:
        for sock in stalled:
            sock.close()


@pytest.fixture
def gate(tmp_path) -> Iterator[tuple[Running, str]]:
    upstream = Upstream()
    control = str(tmp_path / "egress.sock")
    running = Running(upstream, control)
    yield running, control
    running.close()
    upstream.close()


def test_a_listener_handed_over_is_served_by_the_proxy(gate: tuple[Running, str]) -> None:
    proxy, control = gate
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    assert handoff.hand_off(listener.fileno(), control)
    listener.close()  # the proxy holds its own copy now, as after the handoff script execs the agent
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"CONNECT allowed.test:{proxy.upstream.port} HTTP/1.1\r\n\r\nearly".encode())
        head, _, echoed = read_head(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        while len(echoed) < 5:
            echoed += sock.recv(4096)
        assert echoed == b"early"  # bytes sent with the head are not lost
    proxy.wait_idle()
    assert proxy.entries[-1]["host"] == "allowed.test" and proxy.entries[-1]["action"] == "allowed"


def test_anything_but_a_listening_tcp_socket_is_refused(gate: tuple[Running, str], tmp_path) -> None:
    proxy, control = gate
    before = len(os.listdir("/proc/self/fd"))
    read_end, write_end = os.pipe()
    connected_a, connected_b = socket.socketpair()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unlistened = socket.socket()
    with open(tmp_path / "file", "w") as plain_file:
        for fd in (read_end, connected_a.fileno(), udp.fileno(), unlistened.fileno(), plain_file.fileno()):
            assert not handoff.hand_off(fd, control)
    for sock in (connected_a, connected_b, udp, unlistened):
        sock.close()
    os.close(read_end)
    os.close(write_end)
    proxy.wait_idle()
    assert len(os.listdir("/proc/self/fd")) <= before  # every descriptor received was closed
    assert tunnel(proxy, "allowed.test")[1] == b"ping"


def test_listeners_handed_over_are_capped(gate: tuple[Running, str]) -> None:
    _, control = gate
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(MAX_LISTENERS + 1)]
    try:
        results = [handoff.hand_off(listener.fileno(), control) for listener in listeners]
    finally:
        for listener in listeners:
            listener.close()
    assert results == [True] * MAX_LISTENERS + [False]


def test_an_unreachable_destination_gets_502_and_is_logged(proxy: Running) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with proxy.connect() as sock:
        sock.sendall(f"CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 502")
    proxy.wait_idle()
    assert proxy.entries[-1]["action"] == "failed" and proxy.entries[-1]["port"] == port


def test_a_destination_that_never_answers_gets_504(proxy: Running) -> None:
    proxy.proxy.connect_timeout = 0.3
    full = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts: once its queue is full,
    port = full.getsockname()[1]  # Linux drops further connection attempts without an answer
    queued = []
    try:
        for _ in range(16):  # fill the queue: the first probe left unanswered shows it is full
            probe = socket.socket()
            probe.settimeout(0.3)
            queued.append(probe)
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        else:
            pytest.fail("the listener kept answering")
        with proxy.connect() as sock:
            sock.sendall(f"CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n".encode())
            assert read_head(sock).startswith(b"HTTP/1.1 504")
    finally:
        for probe in queued:
            probe.close()
        full.close()


def test_connections_beyond_the_cap_get_503(proxy: Running) -> None:
    proxy.proxy.max_connections = 2
    held = [proxy.connect() for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n")  # unfinished heads hold their slots
        with proxy.connect() as sock:
            sock.sendall(f"CONNECT allowed.test:{proxy.upstream.port} HTTP/1.1\r\n\r\n".encode())
            assert read_head(sock).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    proxy.wait_idle()
    assert tunnel(proxy, "allowed.test")[1] == b"ping"  # slots come back


def _certificate(tmp_path, name: str) -> tuple[str, str]:
    """A self-signed certificate for ``name`` (trusted by the test through SSL_CERT_FILE)."""
    cert, key = str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")
    request = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subject = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    subprocess.run([*request, "-keyout", key, "-out", cert, "-days", "2", *subject], check=True, capture_output=True)
    return cert, key


class TlsApi:
    """A loopback HTTPS server standing in for a model API; records every request head it receives.

    ``body``: bytes of response body (a long one keeps streaming while the client does things)."""

    def __init__(self, cert: str, key: str, body: int = 2) -> None:
        self.body = body
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.heads: list[bytes] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    head = read_head(tls)
                    self.heads.append(head)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % self.body)
                    tls.sendall(b"ok" if self.body == 2 else b"x" * self.body)
            except (OSError, ssl.SSLError):
                conn.close()


@pytest.fixture
def api_endpoint(proxy: Running, tmp_path, monkeypatch):
    """Serve a credential endpoint on the proxy, backed by a loopback HTTPS "model API" for api.test.

    ``certified``: the name on the API's certificate, which the test trusts through SSL_CERT_FILE
    (its own CA stands in for the public ones)."""
    apis: list[TlsApi] = []

    def start(
        name: str = "anthropic", header: str = "x-api-key", prefix: str = "", certified: str = "api.test", body: int = 2
    ) -> TlsApi:
        cert, key = _certificate(tmp_path, certified)
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        api = TlsApi(cert, key, body)
        apis.append(api)
        proxy.proxy.rules = Rules(["api.test", "allowed.test"])
        upstream = f"https://api.test:{api.port}"
        secret = "sk-real-key"
        proxy.proxy.services = {name: {"upstream": upstream, "header": header, "prefix": prefix, "secret": secret}}
        return api

    yield start
    for api in apis:
        api.server.close()


def test_a_smuggled_request_never_reaches_a_credential_endpoint(proxy: Running, api_endpoint) -> None:
    api = api_endpoint()
    smuggled = b"POST /airlock/anthropic/x\tHTTP/1.1\nHost:\tevil.example\nContent-Length:\t60\n\n HTTP/1.1\r\n\r\n"
    with proxy.connect() as sock:
        sock.sendall(smuggled)
        assert read_head(sock).startswith(b"HTTP/1.1 400")
    proxy.wait_idle()
    assert api.heads == []


@pytest.mark.parametrize("certified_name", ["api.test", "impostor.test"])
def test_credential_endpoint_sends_the_key_only_over_verified_tls(
    proxy: Running, api_endpoint, certified_name: str
) -> None:
    api = api_endpoint(certified=certified_name)
    with proxy.connect() as sock:
        sock.sendall(b"POST /airlock/anthropic/v1/messages HTTP/1.1\r\nx-api-key: placeholder\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    proxy.wait_idle()
    if certified_name == "api.test":
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
        assert b"x-api-key: sk-real-key" in api.heads[0] and b"placeholder" not in api.heads[0]
        assert api.heads[0].startswith(b"POST /v1/messages HTTP/1.1")
    else:  # a certificate for another name: refused before a byte of the request is sent
        assert answer.startswith(b"HTTP/1.1 502")
        assert api.heads == []
        assert proxy.entries[-1]["action"] == "failed"


def test_a_bearer_credential_replaces_the_clients_authorization(proxy: Running, api_endpoint) -> None:
    api = api_endpoint("claude", "authorization", "Bearer ")
    with proxy.connect() as sock:
        sock.sendall(b"GET /airlock/claude/v1/models HTTP/1.1\r\nAuthorization: Bearer placeholder\r\n\r\n")
        while sock.recv(65536):
            pass
    proxy.wait_idle()
    (head,) = api.heads
    assert head.lower().count(b"authorization:") == 1 and b"authorization: Bearer sk-real-key" in head


def test_a_bulk_transfer_grows_its_pipe_and_gives_the_budget_back(proxy: Running) -> None:
    import fcntl

    pipes = proxy.proxy.pipes
    with proxy.connect() as sock:
        sock.sendall(f"CONNECT allowed.test:{proxy.upstream.port} HTTP/1.1\r\n\r\n".encode())
        received = len(read_head(sock).partition(b"\r\n\r\n")[2])
        sock.sendall(b"GET /big HTTP/1.1\r\n\r\n")
        while received < 4 * tunnel_module.BULK_PIPE_SIZE:
            received += len(sock.recv(1 << 20))
        assert pipes.bulk_left == tunnel_module.BULK_PIPES - 1  # the download's direction grew
    proxy.wait_idle()
    assert pipes.bulk_left == tunnel_module.BULK_PIPES
    sizes = {fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) for _, write_end in pipes.idle}
    assert sizes <= {tunnel_module.PIPE_SIZE}  # pooled pipes are back to the default size


def test_a_client_that_resets_mid_response_leaves_the_gate_serving(proxy: Running, api_endpoint) -> None:
    api_endpoint(body=20_000_000)
    for _ in range(5):
        sock = proxy.connect()
        sock.sendall(b"POST /airlock/anthropic/v1/messages HTTP/1.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset while the response still streams
        proxy.wait_idle()
        assert tunnel(proxy, "allowed.test")[1] == b"ping"  # the next connections are served
    proxy.wait_idle()
    assert proxy.proxy.open_connections == 0


def test_tunnels_beyond_the_pipe_budget_copy_instead(proxy: Running) -> None:
    proxy.proxy.pipes = tunnel_module.Pipes(limit=2)
    held = []
    try:
        for _ in range(3):  # three tunnels open at once: six directions, two pipes
            sock = proxy.connect()
            sock.sendall(f"CONNECT allowed.test:{proxy.upstream.port} HTTP/1.1\r\n\r\n".encode())
            assert read_head(sock).startswith(b"HTTP/1.1 200")
            held.append(sock)
        for i, sock in enumerate(held):
            payload = b"copy-%d" % i * 1000
            sock.sendall(payload)
            echoed = b""
            while len(echoed) < len(payload):
                echoed += sock.recv(65536)
            assert echoed == payload
        assert proxy.proxy.pipes.made == 2
    finally:
        for sock in held:
            sock.close()
    proxy.wait_idle()


def test_the_connection_log_is_bounded(tmp_path, monkeypatch) -> None:
    from git_airlock.egress import proxy as proxy_module

    monkeypatch.setattr(proxy_module, "MAX_LOG", 4096)
    path = tmp_path / "box.jsonl"
    log = proxy_module.JsonLog(str(path))

    async def flood() -> None:
        for i in range(2000):  # a sandbox hammering a blocked host
            log({"sandbox": "box", "host": "blocked.test", "port": 443, "action": "blocked", "n": i})
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the loop write what is pending

    asyncio.run(flood())
    log.close()
    older = tmp_path / "box.jsonl.1"
    assert path.stat().st_size <= 4096 and older.stat().st_size <= 4096
    last = [json.loads(line)["n"] for line in path.read_text().splitlines()]
    assert last[-1] == 1999  # the newest entries are kept


def test_the_sandbox_under_the_gate_can_be_interrupted(tmp_path) -> None:
    config = tmp_path / "egress.json"
    config.write_text(
        json.dumps({"sandbox": "box", "socket": str(tmp_path / "s.sock"), "log": str(tmp_path / "log"), "allow": []})
    )
    status = subprocess.run(
        [sys.executable, "-m", "git_airlock.egress.supervise", str(config), "--", "cat", "/proc/self/status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    ignored = int(next(line for line in status.stdout.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGINT - 1))  # Ctrl-C reaches the agent
