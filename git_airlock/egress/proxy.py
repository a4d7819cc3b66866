"""The host-side HTTP proxy every connection out of a bwrap sandbox goes through.

It speaks the two forms clients use through ``HTTP_PROXY``/``HTTPS_PROXY``:
``CONNECT host:port`` (HTTPS and anything tunnelled; the proxy never decrypts
the content) and absolute-form plain HTTP (``GET http://host/path``). Each
attempt is checked against the rules and logged as one JSON line (time,
sandbox, host, port, allowed/blocked and why, bytes each way).

The check covers what the far end acts on: a host name a resolver can encode
(``names.py``), a plain request's ``Host`` header, a tunnel's TLS server name
(``tls.py``); else a front end serving an allowed name could route elsewhere.

Written on asyncio's socket level (standard library) rather than a proxy
framework: the job is small (two request forms, no caching, no TLS
interception), hostile clients are the normal case here, and speed comes
from the kernel: once a destination is allowed, ``tunnel.join`` splices
bytes between the two sockets without them passing through Python. Every
limit is explicit: request heads over 64 KiB are refused (431), clients that
do not send a head in time are dropped (408), a connection cap answers 503
beyond it, upstream connects time out (504), and every socket is closed on
every path.

Besides its own Unix socket, the proxy serves listening sockets handed to it
(``SCM_RIGHTS``) by ``handoff.py`` inside a sandbox: the sandbox binds
127.0.0.1:3128 in its empty network namespace, passes the socket out, and
the proxy accepts the sandbox's connections itself, with no relay hop.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from git_airlock.egress import dial, httphead, names, tls, tunnel
from git_airlock.egress.connectlog import Attempt
from git_airlock.egress.rules import NOT_ALLOWED, Rules

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; only the type checker reads this

    from git_airlock.services import CredentialEndpoint

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
MAX_CONNECTIONS = 512
MAX_LISTENERS = 8
"""Listening sockets one proxy accepts from sandboxes (one per sandbox process that starts the network)."""


class Proxy:
    """One proxy serving one sandbox's policy; ``resolve`` maps a host name to the address to dial."""

    def __init__(
        self,
        sandbox: str,
        rules: Rules,
        log: Callable[[Attempt], None],
        resolve: Callable[[str], str] | None = None,
        services: dict[str, CredentialEndpoint] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.rules = rules
        self.log = log
        self.resolve = resolve or (lambda host: host)
        self.services = services or {}
        """name -> {"upstream": URL, "header": name, "prefix": str, "secret": value}: credential endpoints."""
        self.head_timeout = HEAD_TIMEOUT
        self.connect_timeout = CONNECT_TIMEOUT
        self.max_connections = MAX_CONNECTIONS
        self.loop: asyncio.AbstractEventLoop  # serve() sets it
        self.pipes = tunnel.Pipes()
        self.open_connections = 0
        self.listeners: list[socket.socket] = []
        self.tasks: set[asyncio.Task[None]] = set()
        """Every accept loop and connection: asyncio keeps only weak references to tasks, and a tunnel
        whose sockets are both out of the selector (one half-closed, one draining) would be collected."""
        self.idle = asyncio.Event()
        """Set whenever no connection is open (tests wait on it instead of sleeping)."""
        self.idle.set()

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def serve(self, listener: socket.socket, handoff: bool = False) -> None:
        """Accept connections on ``listener`` until cancelled; ``handoff``: they may pass a listener in."""
        self.loop = asyncio.get_running_loop()
        listener.setblocking(False)
        if listener.family != socket.AF_UNIX:
            # accepted connections inherit both: no Nagle delay on relayed messages, and no accept
            # (nor a wasted read and wake-up) until the client's request has arrived
            with contextlib.suppress(OSError):
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, int(HEAD_TIMEOUT))
        fd = listener.fileno()
        self.loop.add_reader(fd, self._accept, listener, handoff)
        try:
            await self.loop.create_future()  # serves until cancelled
        finally:
            self.loop.remove_reader(fd)

    def _accept(self, listener: socket.socket, handoff: bool) -> None:
        """Take every connection waiting (one wake-up for a burst of clients)."""
        for _ in range(64):
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError:  # out of descriptors: let connections finish before accepting more
                self.loop.remove_reader(listener.fileno())
                self.loop.call_later(0.05, self._resume, listener, handoff)
                return
            conn.setblocking(False)
            self._spawn(self.handle(conn, handoff))

    def _resume(self, listener: socket.socket, handoff: bool) -> None:
        if listener.fileno() >= 0:
            self.loop.add_reader(listener.fileno(), self._accept, listener, handoff)

    async def close(self) -> None:
        """End every connection and accept loop, then close what the proxy owns."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for listener in self.listeners:
            listener.close()
        self.pipes.close()

    async def handle(self, conn: socket.socket, handoff: bool = False) -> None:
        self.open_connections += 1
        self.idle.clear()
        try:
            if self.open_connections > self.max_connections:
                raise httphead.Refused(503, "too many connections")
            await self._serve(conn, handoff)
        except httphead.Refused as refused:
            await httphead.reply(self.loop, conn, refused.status, str(refused))
        except (OSError, asyncio.TimeoutError):
            pass
        except Exception as exc:  # a bug of ours must cost one connection, never a traceback on the terminal
            self.log({"time": time.time(), "sandbox": self.sandbox, "action": "failed", "reason": repr(exc)[:200]})
        finally:
            conn.close()
            self.open_connections -= 1
            if not self.open_connections:
                self.idle.set()

    async def _serve(self, conn: socket.socket, handoff: bool) -> None:
        deadline = self.loop.time() + self.head_timeout
        try:
            head, rest = await self._read_head(conn, handoff, deadline)
        except asyncio.TimeoutError:
            raise httphead.Refused(408, "request head not received in time") from None
        if not head:
            return
        method, target, headers = httphead.parse_head(head)
        if target.startswith("/airlock/"):
            await self._service(method, target, headers, rest, conn)
            return
        host, port, forward = httphead.destination(method, target, headers, rest)
        entry: Attempt = {"time": time.time(), "sandbox": self.sandbox, "host": host[:255], "port": port}
        self._check_names(entry, host, method, headers)
        self._check(entry)
        upstream = await self._dial(entry, host, port)
        try:
            if method == "CONNECT":
                await tunnel.send_all(self.loop, conn, b"HTTP/1.1 200 Connection Established\r\n\r\n")
                deadline = self.loop.time() + self.head_timeout
                refusal = await tls.screen(self.loop, conn, upstream, host, forward, deadline)
                if refusal:  # closed unanswered: the client expects TLS now, not an HTTP error
                    self._block(entry, **refusal)
                    return
            await self._relay(entry, conn, upstream, forward)
        finally:
            upstream.close()

    async def _relay(self, entry: Attempt, conn: socket.socket, upstream: socket.socket, forward: bytes) -> None:
        """Send ``forward`` (what came with the head) upstream, then splice both ways until both end."""
        moved = [len(forward), 0]
        try:
            if forward:
                await tunnel.send_all(self.loop, upstream, forward)
            await tunnel.join(self.loop, self.pipes, conn, upstream, moved)
        finally:
            self.log({**entry, "action": "allowed", "sent": moved[0], "received": moved[1]})

    async def _read_head(self, conn: socket.socket, handoff: bool, deadline: float) -> tuple[bytes, bytes]:
        """The request head and whatever followed it; an empty head when the client left first."""
        data = await self._take_listener(conn, deadline) if handoff else b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            if len(data) > MAX_HEAD:
                raise httphead.Refused(431, "request head too large")
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                await tunnel.readable(self.loop, conn, deadline)
                continue
            if not chunk:
                return b"", b""
            data += chunk
        if end + 4 > MAX_HEAD:
            raise httphead.Refused(431, "request head too large")
        return data[: end + 4], data[end + 4 :]

    async def _take_listener(self, conn: socket.socket, deadline: float) -> bytes:
        """Read the first bytes; if a listening socket came with them, serve it and say so."""
        fds = array.array("i")
        while True:
            try:
                data, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize), socket.MSG_CMSG_CLOEXEC)
                break
            except BlockingIOError:
                await tunnel.readable(self.loop, conn, deadline)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not fds:
            return data
        listener = _listening_socket(fds[0])
        for extra in fds[1:]:
            with contextlib.suppress(OSError):
                socket.close(extra)
        if listener is None or len(self.listeners) >= MAX_LISTENERS:
            if listener:
                listener.close()
            await tunnel.send_all(self.loop, conn, b"refused\n")
            return b""
        self.listeners.append(listener)
        self._spawn(self.serve(listener))
        await tunnel.send_all(self.loop, conn, b"serving\n")
        return b""

    def _block(self, entry: Attempt, **why: Unpack[tls.Refusal]) -> None:
        self.log({**entry, "action": "blocked", **why, "sent": 0, "received": 0})

    def _check(self, entry: Attempt) -> None:
        if not self.rules.allows(entry["host"], entry["port"]):
            self._block(entry, reason=NOT_ALLOWED)
            raise httphead.Refused(
                403, f"{entry['host']}:{entry['port']} is not allowed by the sandbox's network policy"
            )

    def _check_names(self, entry: Attempt, host: str, method: str, headers: bytes) -> None:
        """400 for a host name no resolver can encode, or a plain request whose ``Host`` names another
        destination (the server behind would serve that one); a request without ``Host`` goes as it is."""
        if not names.valid_host(host):
            self._block(entry, reason="not a valid host name")
            raise httphead.Refused(400, "not a valid host name")
        if method == "CONNECT":
            return
        hosts = [
            line[5:].strip(b" \t").decode("latin-1") for line in headers.split(b"\r\n") if line[:5].lower() == b"host:"
        ]
        if len(hosts) > 1 or (hosts and not names.names_target(hosts[0], host, entry["port"])):
            self._block(entry, reason="the Host header names another destination than the request")
            raise httphead.Refused(400, "the Host header must name the request's host and port")

    async def _dial(self, entry: Attempt, host: str, port: int) -> socket.socket:
        try:
            return await dial.connect(self.loop, self.resolve(host), port, self.loop.time() + self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self.log({**entry, "action": "failed", "sent": 0, "received": 0})
            status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
            raise httphead.Refused(status, f"cannot reach {host}:{port}") from None

    async def _service(self, method: str, target: str, headers: bytes, rest: bytes, conn: socket.socket) -> None:
        """Forward to a service's real API, putting the host-held credential on the request."""
        name, _, path = target[len("/airlock/") :].partition("/")
        service = self.services.get(name)
        if service is None or not service.get("secret"):
            raise httphead.Refused(404, f"no credential endpoint {name!r} (is a credential stored for it?)")
        if any(line[:8].lower() == b"upgrade:" for line in headers.split(b"\r\n")):
            # one request per connection (``Connection: close``): a protocol switch cannot pass, and 426 is
            # what makes a client that tries one first (Codex's Responses WebSocket) use plain requests at once
            raise httphead.Refused(426, "the credential endpoint does not switch protocols; send plain HTTP requests")
        api = urlsplit(service["upstream"])
        host, tls = api.hostname or "", api.scheme == "https"
        port = api.port or (443 if tls else 80)
        entry: Attempt = {"time": time.time(), "sandbox": self.sandbox, "host": host, "port": port, "credential": name}
        self._check(entry)
        dropped = (b"host:", b"x-api-key:", b"authorization:", service["header"].encode().lower() + b":")
        kept = [
            line for line in httphead.close(headers).split(b"\r\n") if line and not line.lower().startswith(dropped)
        ]
        authority = host if api.port is None else f"{host}:{port}"
        head = (
            f"{method} {api.path.rstrip('/')}/{path} HTTP/1.1\r\nHost: {authority}\r\n"
            f"{service['header']}: {service.get('prefix', '')}{service['secret']}\r\n"
        ).encode("latin-1")
        head += b"\r\n".join(kept) + b"\r\n\r\n" + rest
        raw = await self._dial(entry, host, port)
        moved = [len(head), 0]
        answer: Attempt = {}
        try:
            streams = await self._verified_tls(entry, raw, host) if tls else None
            try:
                if streams:
                    await dial.bridge_tls(self.loop, conn, *streams, head, moved, answer)
                else:
                    await tunnel.send_all(self.loop, raw, head)
                    await tunnel.join(self.loop, self.pipes, conn, raw, moved)
            finally:
                self.log({**entry, "action": "allowed", "sent": moved[0], "received": moved[1], **answer})
        finally:
            raw.close()

    async def _verified_tls(
        self, entry: Attempt, raw: socket.socket, host: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TLS to the API host with its certificate checked: the credential goes to nobody else."""
        context = ssl.create_default_context()
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(sock=raw.dup(), ssl=context, server_hostname=host), self.connect_timeout
            )
        except (OSError, asyncio.TimeoutError):
            self.log({**entry, "action": "failed", "sent": 0, "received": 0})
            raise httphead.Refused(502, f"no verified TLS connection to {host}") from None


def _listening_socket(fd: int) -> socket.socket | None:
    """The passed descriptor as a socket, if it is a listening TCP socket; anything else is closed."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        with contextlib.suppress(OSError):
            socket.close(fd)
        return None
    try:
        if (
            sock.family in (socket.AF_INET, socket.AF_INET6)
            and sock.type == socket.SOCK_STREAM
            and sock.proto == socket.IPPROTO_TCP
            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        ):
            return sock
    except OSError:
        pass
    sock.close()
    return None
