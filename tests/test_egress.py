"""The egress proxy: rules, both request forms, logging, and hostile clients, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
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


def allow(port: int) -> list[str]:
    """The test policy; rules name the loopback upstream's port (a rule without one allows 443 and 80 only)."""
    return [f"allowed.test:{port}", f"*.npmjs.org:{port}", "api.example:443"]


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
        self.errors: list[dict] = []
        """What reached the loop's exception handler (a task's traceback): the gate must leave it empty."""
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        started = threading.Event()

        async def main() -> None:
            self.proxy = Proxy("box", Rules(allow(upstream.port)), self.entries.append, lambda host: "127.0.0.1")
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
    assert running.errors == [], "no traceback from the gate, whatever the client sent"


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
            f"Host: allowed.test:{proxy.upstream.port}\r\nProxy-Authorization: secret\r\n\r\n".encode()
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
    proxy.proxy.rules = Rules([f"allowed.test:{port}"])
    with proxy.connect() as sock:
        sock.sendall(f"CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 502")
    proxy.wait_idle()
    assert proxy.entries[-1]["action"] == "failed" and proxy.entries[-1]["port"] == port


def test_a_destination_that_never_answers_gets_504(proxy: Running) -> None:
    proxy.proxy.connect_timeout = 0.3
    full = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts: once its queue is full,
    port = full.getsockname()[1]  # Linux drops further connection attempts without an answer
    proxy.proxy.rules = Rules([f"allowed.test:{port}"])
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
        proxy.proxy.rules = Rules([f"api.test:{api.port}", f"allowed.test:{proxy.upstream.port}"])
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


def test_a_protocol_switch_on_a_credential_endpoint_gets_426_and_no_key_leaves(proxy: Running, api_endpoint) -> None:
    """A client that tries a WebSocket first (Codex's Responses transport) learns at once to send plain
    requests; the upgrade never reaches the API with the key on it."""
    api = api_endpoint("openai", "authorization", "Bearer ")
    upgrade = b"GET /airlock/openai/v1/responses HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with proxy.connect() as sock:
        sock.sendall(upgrade)
        assert read_head(sock).startswith(b"HTTP/1.1 426")
    proxy.wait_idle()
    assert api.heads == []


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
    from git_airlock.egress import connectlog

    monkeypatch.setattr(connectlog, "MAX_LOG", 4096)
    path = tmp_path / "box.jsonl"
    log = connectlog.JsonLog(str(path))

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


# --- a plain-HTTP request's Host header must name its target ---------------------------------


@pytest.mark.parametrize(
    "host_lines",
    [
        "Host: evil.test:{port}",
        "Host: allowed.test",  # no port: 80, not the target's
        "Host: allowed.test:{other}",
        "Host: allowed.test.evil.test:{port}",
        "Host: ",
        "Host: [::1]:{port}",
        "Host: allowed.test:{port}\r\nHost: evil.test:{port}",  # two: which one would the server read?
    ],
)
def test_a_host_header_naming_another_destination_is_refused(proxy: Running, host_lines: str) -> None:
    port = proxy.upstream.port
    lines = host_lines.format(port=port, other=port + 1)
    with proxy.connect() as sock:
        sock.sendall(f"GET http://allowed.test:{port}/ HTTP/1.1\r\n{lines}\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 400")
    proxy.wait_idle()
    (entry,) = proxy.entries
    assert entry["action"] == "blocked" and "Host header" in entry["reason"] and entry["sent"] == 0


@pytest.mark.parametrize("host_line", ["Host: ALLOWED.Test:{port}\r\n", "Host: allowed.test.:{port}\r\n", ""])
def test_a_host_header_naming_the_target_or_none_is_forwarded(proxy: Running, host_line: str) -> None:
    port = proxy.upstream.port
    with proxy.connect() as sock:
        sock.sendall(f"GET http://allowed.test:{port}/x HTTP/1.1\r\n{host_line.format(port=port)}\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"upstream saw: GET /x HTTP/1.1")


def test_a_host_header_without_a_port_names_port_80() -> None:
    from git_airlock.egress.names import names_target

    assert names_target("allowed.test", "allowed.test", 80)
    assert names_target("Allowed.Test.:80", "allowed.test", 80)
    assert names_target("allowed.test:080", "allowed.test.", 80)
    assert not names_target("allowed.test", "allowed.test", 8080)
    assert not names_target("allowed.test:8080", "allowed.test", 80)
    assert not names_target("allowed.test:", "allowed.test", 80)
    assert not names_target("allowed.test..", "allowed.test", 80)
    assert not names_target("allowed.test:+80", "allowed.test", 80)


# --- a host rule without a port allows 443 and 80 only ----------------------------------------


def test_a_rule_without_a_port_allows_only_443_and_80() -> None:
    rules = Rules(["api.example.com", "*.npmjs.org", "ssh.example.com:22"], deny=["bad.npmjs.org"])
    assert rules.allows("api.example.com", 443) and rules.allows("api.example.com", 80)
    assert not rules.allows("api.example.com", 22) and not rules.allows("api.example.com", 8443)
    assert rules.allows("cdn.npmjs.org", 443) and not rules.allows("cdn.npmjs.org", 8080)
    assert rules.allows("ssh.example.com", 22) and not rules.allows("ssh.example.com", 443)
    denied = Rules(["*.npmjs.org:8443"], deny=["bad.npmjs.org"])
    assert not denied.allows("bad.npmjs.org", 8443), "a deny rule without a port covers every port"
    assert denied.allows("good.npmjs.org", 8443)


def test_a_rule_without_a_port_does_not_open_other_ports_through_the_gate(proxy: Running) -> None:
    proxy.proxy.rules = Rules(["allowed.test"])
    head, _ = tunnel(proxy, "allowed.test")  # the loopback upstream listens on neither 443 nor 80
    assert head.startswith(b"HTTP/1.1 403")
    proxy.wait_idle()
    assert proxy.entries[-1]["action"] == "blocked" and proxy.entries[-1]["port"] == proxy.upstream.port


# --- host names no resolver can encode ----------------------------------------------------------


BAD_NAMES = [
    ".github.com",
    "a..b.github.com",
    "x" * 64 + ".github.com",
    "a." * 122 + "x.github.com",  # 255 bytes: past DNS's 253
    "-a.github.com",
    "a-.github.com",
    "x.github.com..",
    "127.1",  # the C resolver reads these as addresses: an IP literal must be written in full
    "0x7f.0.0.1",
]


@pytest.mark.parametrize("form", ["CONNECT {name}:443 HTTP/1.1", "GET http://{name}/ HTTP/1.1"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_host_name_no_resolver_can_encode_gets_400(proxy: Running, form: str, name: str) -> None:
    proxy.proxy.rules = Rules(["*.github.com", "*.1", "127.1"])
    proxy.proxy.resolve = lambda host: host  # as the gate does: a name goes to the resolver
    proxy.proxy.connect_timeout = 2
    with proxy.connect() as sock:
        sock.sendall(form.format(name=name).encode() + b"\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 400")
    proxy.wait_idle()
    (entry,) = proxy.entries
    assert entry["action"] == "blocked" and entry["reason"] == "not a valid host name"


def test_valid_host_names_and_ip_literals() -> None:
    from git_airlock.egress.names import valid_host

    for name in ["github.com", "GitHub.com.", "a-b.c0", "localhost", "x" * 63 + ".io", "10.1.2.3", "::1"]:
        assert valid_host(name), name
    long_name = ".".join(["x" * 63] * 3 + ["x" * 61])  # 253 bytes
    assert valid_host(long_name) and valid_host(long_name + ".") and not valid_host(long_name + "x")
    for name in [*BAD_NAMES, "", ".", "a_b.com", "a b.com", "1.2.3", "1.2.3.4.", "256.1.1.1", "exa\u212ample.com"]:
        assert not valid_host(name), name


# --- a CONNECT tunnel's TLS server name must be its target --------------------------------------


class Sink:
    """A loopback upstream that records everything each connection sends until its end, answering nothing."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.record, args=(conn,), daemon=True).start()

    def record(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            try:
                while chunk := conn.recv(65536):
                    data += chunk
            except OSError:
                pass
        self.received.put(data)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def sink(proxy: Running) -> Iterator[Sink]:
    upstream = Sink()
    proxy.proxy.rules = Rules([f"allowed.test:{upstream.port}", f"127.0.0.1:{upstream.port}"])
    yield upstream
    upstream.close()


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _server_name(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(struct.pack("!BH", name_type, len(name)) + name for name in names)
    return _extension(0, struct.pack("!H", len(entries)) + entries)


def client_hello(extensions: bytes | None = None, *, session_id: bytes = b"", after: bytes = b"") -> bytes:
    """A ClientHello record, by default naming allowed.test; ``after``: bytes inside the record past the hello."""
    if extensions is None:
        extensions = _server_name(b"allowed.test")
    body = b"\x03\x03" + bytes(range(32)) + bytes([len(session_id)]) + session_id
    body += b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"  # two cipher suites, null compression
    body += struct.pack("!H", len(extensions)) + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body + after
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def _through_tunnel(proxy: Running, target: str, port: int, *pieces: bytes, early: bytes = b"") -> None:
    """Send ``early`` with a CONNECT head and ``pieces`` (a TCP segment each) through the tunnel, then end."""
    with proxy.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"CONNECT {target}:{port} HTTP/1.1\r\n\r\n".encode() + early)
        assert read_head(sock).startswith(b"HTTP/1.1 200")
        try:
            for piece in pieces:
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)
        except OSError:  # the gate may close (reset, with the ClientHello unread) at any point
            pass


def _assert_refused(proxy: Running, sink: Sink, says: str) -> None:
    assert sink.received.get(timeout=30) == b"", "nothing reaches the upstream"
    proxy.wait_idle()
    (entry,) = proxy.entries
    assert entry["action"] == "blocked" and says in entry["reason"], entry
    assert entry["sent"] == 0 and entry["received"] == 0


def test_a_tls_client_naming_another_host_is_cut_off(proxy: Running, sink: Sink) -> None:
    with proxy.connect() as sock:
        sock.settimeout(10)
        sock.sendall(f"CONNECT allowed.test:{sink.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context()
        with pytest.raises(OSError):  # the gate closes the tunnel: EOF or reset in the handshake
            context.wrap_socket(sock, server_hostname="other.example")
    _assert_refused(proxy, sink, "server name")
    assert proxy.entries[0]["sni"] == "other.example"


def test_a_tls_client_naming_its_target_gets_through(proxy: Running, tmp_path) -> None:
    cert, key = _certificate(tmp_path, "allowed.test")
    api = TlsApi(cert, key)
    try:
        proxy.proxy.rules = Rules([f"allowed.test:{api.port}"])
        with proxy.connect() as sock:
            sock.sendall(f"CONNECT allowed.test:{api.port} HTTP/1.1\r\n\r\n".encode())
            assert read_head(sock).startswith(b"HTTP/1.1 200")
            context = ssl.create_default_context(cafile=cert)
            with context.wrap_socket(sock, server_hostname="allowed.test") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
    finally:
        api.server.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    proxy.wait_idle()
    assert proxy.entries[-1]["action"] == "allowed" and proxy.entries[-1]["sent"] > 0


@pytest.mark.parametrize(
    "hello",
    [
        client_hello(_server_name(b"ALLOWED.Test.")),  # case and a trailing dot do not matter
        client_hello(_extension(10, b"\x00\x02\x00\x1d")),  # no server name at all
        client_hello(b""),  # no extensions
    ],
)
def test_a_client_hello_naming_the_target_or_nothing_passes_whole(proxy: Running, sink: Sink, hello: bytes) -> None:
    _through_tunnel(proxy, "allowed.test", sink.port, hello + b"more")
    assert sink.received.get(timeout=30) == hello + b"more"


def test_a_client_hello_in_several_segments_is_read_whole(proxy: Running, sink: Sink) -> None:
    good = client_hello()
    _through_tunnel(proxy, "allowed.test", sink.port, good[:3], good[3:20], good[20:])
    assert sink.received.get(timeout=30) == good
    proxy.wait_idle()
    proxy.entries.clear()
    bad = client_hello(_server_name(b"evil.test"))
    _through_tunnel(proxy, "allowed.test", sink.port, bad[:3], bad[3:60], bad[60:])
    _assert_refused(proxy, sink, "server name")


def test_bytes_sent_with_the_connect_head_count_towards_the_client_hello(proxy: Running, sink: Sink) -> None:
    bad = client_hello(_server_name(b"evil.test"))
    _through_tunnel(proxy, "allowed.test", sink.port, bad[10:], early=bad[:10])
    _assert_refused(proxy, sink, "server name")
    proxy.entries.clear()
    good = client_hello()
    _through_tunnel(proxy, "allowed.test", sink.port, early=good + b"more")  # all of it with the head
    assert sink.received.get(timeout=30) == good + b"more"


def test_a_server_name_on_a_tunnel_to_an_ip_address_is_refused(proxy: Running, sink: Sink) -> None:
    _through_tunnel(proxy, "127.0.0.1", sink.port, client_hello())
    _assert_refused(proxy, sink, "IP address")
    proxy.entries.clear()
    plain = client_hello(b"")
    _through_tunnel(proxy, "127.0.0.1", sink.port, plain)
    assert sink.received.get(timeout=30) == plain


_HELLO = client_hello()
_RECORD_OFFSET = 5  # the handshake message starts here
_EXTENSIONS_AT = len(_HELLO) - len(_server_name(b"allowed.test")) - 2


def _patched(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


MALFORMED = {
    "two names in one extension": client_hello(_server_name(b"allowed.test", b"evil.test")),
    "two server_name extensions": client_hello(_server_name(b"allowed.test") + _server_name(b"evil.test")),
    "a name of another type": client_hello(_server_name(b"allowed.test", name_type=1)),
    "an empty server_name extension": client_hello(_extension(0, b"")),
    "an empty name": client_hello(_server_name(b"")),
    "a name that is not ASCII": client_hello(_server_name(b"allowed.t\xe9st")),
    "a list longer than its extension": client_hello(_extension(0, b"\x00\x40\x00\x00\x0callowed.test")),
    "an extension past the end": client_hello(_server_name(b"allowed.test") + b"\x00\x0a\xff\xff"),
    "extensions past the hello": _patched(_HELLO, _EXTENSIONS_AT, b"\x7f\xff"),
    "a session id over 32 bytes": client_hello(session_id=b"s" * 33),
    "a hello past its record": _patched(_HELLO, _RECORD_OFFSET + 1, b"\x00\x7f\xff"),
    "bytes after the hello in its record": client_hello(after=b"\x16"),
    "another handshake type": _patched(_HELLO, _RECORD_OFFSET, b"\x02"),
    "a record of length 0": b"\x16\x03\x01\x00\x00" + _HELLO,
    "a record over 16 KiB": b"\x16\x03\x01\x40\x01" + b"\x00" * 16385,
    "a record of another version": _patched(_HELLO, 1, b"\x7f"),
    "the hello split over two records": (
        b"\x16\x03\x01\x00\x10" + _HELLO[5:21] + b"\x16\x03\x01" + struct.pack("!H", len(_HELLO) - 21) + _HELLO[21:]
    ),
    "a record cut short": _HELLO[:-5],
    "a header cut short": _HELLO[:3],
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_client_hello_closes_the_tunnel(proxy: Running, sink: Sink, name: str) -> None:
    _through_tunnel(proxy, "allowed.test", sink.port, MALFORMED[name])
    _assert_refused(proxy, sink, "ClientHello")


def test_a_client_hello_that_never_completes_is_cut_off_in_time(proxy: Running, sink: Sink) -> None:
    proxy.proxy.head_timeout = 0.3
    with proxy.connect() as sock:
        sock.settimeout(10)
        sock.sendall(f"CONNECT allowed.test:{sink.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(_HELLO[:40])  # and nothing more, not even the end
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""
    _assert_refused(proxy, sink, "in time")


def test_a_server_that_speaks_first_is_not_held_up(proxy: Running) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    proxy.proxy.rules = Rules([f"allowed.test:{server.getsockname()[1]}"])
    proxy.proxy.head_timeout = 30

    def greet() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"220 hello\r\n")
            conn.recv(1)

    thread = threading.Thread(target=greet, daemon=True)
    thread.start()
    try:
        with proxy.connect() as sock:
            sock.settimeout(10)  # well below the head timeout: the banner must not wait for it
            sock.sendall(f"CONNECT allowed.test:{server.getsockname()[1]} HTTP/1.1\r\n\r\n".encode())
            head, _, banner = read_head(sock).partition(b"\r\n\r\n")
            while not banner.endswith(b"\r\n"):
                banner += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200") and banner == b"220 hello\r\n"
    finally:
        thread.join(10)
        server.close()


def test_the_client_hello_parser_never_fails_but_with_malformed() -> None:
    from git_airlock.egress import tls

    samples = [*MALFORMED.values(), _HELLO, client_hello(b""), client_hello(_server_name(b"x" * 300))]
    rng = random.Random(1)
    for sample in samples:
        mutations = [sample[:cut] for cut in range(len(sample))]
        for _ in range(200):
            mutated = bytearray(sample)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            mutations.append(bytes(mutated))
        for data in mutations:
            try:
                size = tls.record_size(data)
                if len(data) >= size:
                    name = tls.server_name(data[:size])
                    assert name is None or isinstance(name, str)
            except tls.Malformed:
                pass


def test_an_unexpected_error_costs_one_connection_and_no_traceback(proxy: Running, monkeypatch) -> None:
    """Whatever goes wrong inside the gate must not print a traceback on the user's terminal."""
    from git_airlock.egress import httphead

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the gate")

    monkeypatch.setattr(httphead, "parse_head", broken)
    with proxy.connect() as sock:
        sock.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
        assert sock.recv(100) == b""  # closed, unanswered
    proxy.wait_idle()
    assert proxy.entries[-1]["action"] == "failed" and "a bug in the gate" in proxy.entries[-1]["reason"]
    monkeypatch.undo()
    head, echoed = tunnel(proxy, "allowed.test")  # the gate still serves
    assert head.startswith(b"HTTP/1.1 200") and echoed == b"ping"
