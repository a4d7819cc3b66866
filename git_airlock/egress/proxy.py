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
import errno
import ipaddress
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Literal, TypedDict
from urllib.parse import urlsplit

from git_airlock.egress import names, tls, tunnel
from git_airlock.egress.rules import NOT_ALLOWED, Rules

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; only the type checker reads this

    from git_airlock.services import CredentialEndpoint

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
MAX_CONNECTIONS = 512
MAX_LOG = 16 * 1024 * 1024
"""Bytes of connection log per file; one older file is kept beside it."""
MAX_LISTENERS = 8
"""Listening sockets one proxy accepts from sandboxes (one per sandbox process that starts the network)."""
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")
_ABSOLUTE = re.compile(r"^http://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^ ]*)?$")
"""Host names are read loosely here, then checked by ``names.valid_host``; the log keeps 255 characters."""
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
"""Visible ASCII only: no space, tab, CR, LF or other control byte in a request target."""
_HEADER = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*")
"""``name: value`` with a token name, no whitespace before the colon, no control byte but tab."""
_REASONS = {
    400: "Bad Request",
    404: "Not Found",
    403: "Forbidden",
    408: "Request Timeout",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Attempt(TypedDict, total=False):
    """One connection attempt as the log holds it (a JSON line); what is known of it so far, while it is made."""

    time: float
    sandbox: str
    host: str
    port: int
    credential: str
    """The service whose credential the gate put on the request (credential endpoints)."""
    action: Literal["allowed", "blocked", "failed"]
    reason: str
    sni: str
    sent: int
    received: int
    status: int
    """The status of the API's first response (credential endpoints)."""


class Refused(Exception):
    """A request the proxy answers with an error status instead of serving."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
                raise Refused(503, "too many connections")
            await self._serve(conn, handoff)
        except Refused as refused:
            await _reply(self.loop, conn, refused.status, str(refused))
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
            raise Refused(408, "request head not received in time") from None
        if not head:
            return
        method, target, headers = _parse_head(head)
        if target.startswith("/airlock/"):
            await self._service(method, target, headers, rest, conn)
            return
        host, port, forward = _destination(method, target, headers, rest)
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
                raise Refused(431, "request head too large")
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                await tunnel.readable(self.loop, conn, deadline)
                continue
            if not chunk:
                return b"", b""
            data += chunk
        if end + 4 > MAX_HEAD:
            raise Refused(431, "request head too large")
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
            raise Refused(403, f"{entry['host']}:{entry['port']} is not allowed by the sandbox's network policy")

    def _check_names(self, entry: Attempt, host: str, method: str, headers: bytes) -> None:
        """400 for a host name no resolver can encode, or a plain request whose ``Host`` names another
        destination (the server behind would serve that one); a request without ``Host`` goes as it is."""
        if not names.valid_host(host):
            self._block(entry, reason="not a valid host name")
            raise Refused(400, "not a valid host name")
        if method == "CONNECT":
            return
        hosts = [
            line[5:].strip(b" \t").decode("latin-1") for line in headers.split(b"\r\n") if line[:5].lower() == b"host:"
        ]
        if len(hosts) > 1 or (hosts and not names.names_target(hosts[0], host, entry["port"])):
            self._block(entry, reason="the Host header names another destination than the request")
            raise Refused(400, "the Host header must name the request's host and port")

    async def _dial(self, entry: Attempt, host: str, port: int) -> socket.socket:
        try:
            return await _connect(self.loop, self.resolve(host), port, self.loop.time() + self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self.log({**entry, "action": "failed", "sent": 0, "received": 0})
            status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
            raise Refused(status, f"cannot reach {host}:{port}") from None

    async def _service(self, method: str, target: str, headers: bytes, rest: bytes, conn: socket.socket) -> None:
        """Forward to a service's real API, putting the host-held credential on the request."""
        name, _, path = target[len("/airlock/") :].partition("/")
        service = self.services.get(name)
        if service is None or not service.get("secret"):
            raise Refused(404, f"no credential endpoint {name!r} (is a credential stored for it?)")
        if any(line[:8].lower() == b"upgrade:" for line in headers.split(b"\r\n")):
            # one request per connection (``Connection: close``): a protocol switch cannot pass, and 426 is
            # what makes a client that tries one first (Codex's Responses WebSocket) use plain requests at once
            raise Refused(426, "the credential endpoint does not switch protocols; send plain HTTP requests")
        upstream = urlsplit(service["upstream"])
        host, tls = upstream.hostname or "", upstream.scheme == "https"
        port = upstream.port or (443 if tls else 80)
        entry: Attempt = {"time": time.time(), "sandbox": self.sandbox, "host": host, "port": port, "credential": name}
        self._check(entry)
        dropped = (b"host:", b"x-api-key:", b"authorization:", service["header"].encode().lower() + b":")
        kept = [line for line in _close(headers).split(b"\r\n") if line and not line.lower().startswith(dropped)]
        authority = host if upstream.port is None else f"{host}:{port}"
        head = (
            f"{method} {upstream.path.rstrip('/')}/{path} HTTP/1.1\r\nHost: {authority}\r\n"
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
                    await _bridge_tls(self.loop, conn, *streams, head, moved, answer)
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
            raise Refused(502, f"no verified TLS connection to {host}") from None


def _destination(method: str, target: str, headers: bytes, rest: bytes) -> tuple[str, int, bytes]:
    """Host (lower case), port, and the bytes to send there first: what came after a CONNECT
    head, or an absolute-form request rewritten to origin form, one request per connection."""
    if method == "CONNECT":
        match = _HOST_PORT.match(target)
        if not match:
            raise Refused(400, "CONNECT needs host:port")
        host, port, forward = match["host"].strip("[]"), int(match["port"]), rest
    else:
        match = _ABSOLUTE.match(target)
        if not match:
            raise Refused(400, "only absolute http:// requests and CONNECT go through this proxy")
        host, port = match["host"], int(match["port"] or 80)
        forward = f"{method} {match['path'] or '/'} HTTP/1.1\r\n".encode("latin-1") + _close(headers) + rest
    if not 0 < port < 65536:
        raise Refused(400, "bad port")
    return host.lower(), port, forward


def _parse_head(head: bytes) -> tuple[str, str, bytes]:
    """Method, target and header lines of a request head, read strictly.

    Whatever is passed on must mean the same to every server behind the gate: a bare
    LF, a control character, a folded line or a space before a colon could let a
    client smuggle its own request line or Host past the gate's view of the request
    (and, on a credential endpoint, around the credential the gate adds).
    """
    request_line, *lines = head[:-4].split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise Refused(400, "malformed request line")
    if parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise Refused(400, "malformed request line")
    if not all(_HEADER.fullmatch(line) for line in lines):
        raise Refused(400, "malformed header line")
    return parts[0].decode("ascii"), parts[1].decode("ascii"), b"\r\n".join(lines)


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


async def _connect(loop: asyncio.AbstractEventLoop, address: str, port: int, deadline: float) -> socket.socket:
    """A connected non-blocking socket; names go through the resolver, literal addresses do not.

    ``asyncio.TimeoutError`` once ``deadline`` (loop time) passes.
    """
    infos: list[tuple[socket.AddressFamily, tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]]]
    try:
        literal = ipaddress.ip_address(address)
        infos = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, (address, port))]
    except ValueError:
        lookup = loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        found = await asyncio.wait_for(lookup, max(0.0, deadline - loop.time()))
        infos = [(family, sockaddr) for family, _, _, _, sockaddr in found]
    error: OSError = OSError(f"no address for {address}")
    for family, sockaddr in infos:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if sock.connect_ex(sockaddr) == errno.EINPROGRESS:
                await tunnel.writable(loop, sock, deadline)
            failure = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failure:
                raise OSError(failure, os.strerror(failure))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


async def _bridge_tls(
    loop: asyncio.AbstractEventLoop,
    conn: socket.socket,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: bytes,
    moved: list[int],
    answer: Attempt,
) -> None:
    """Relay the plain client connection over the TLS streams to the service's API host.

    ``answer`` gets the status of the API's first response: a 401 for the host-held credential
    is worth telling the user, who never sees the agent's side of it."""

    async def upward() -> None:
        writer.write(head)
        while True:
            try:
                data = conn.recv(65536)
            except BlockingIOError:
                await tunnel.readable(loop, conn)
                continue
            if not data:
                break
            moved[0] += len(data)
            writer.write(data)
            await writer.drain()

    async def downward() -> None:
        while data := await reader.read(1 << 16):
            if not moved[1] and data.startswith(b"HTTP/1.") and data[9:12].isdigit():
                answer["status"] = int(data[9:12])
            moved[1] += len(data)
            await tunnel.send_all(loop, conn, data)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)

    sending = loop.create_task(upward())
    try:
        await downward()
    finally:
        # whatever ended the response, the request side must stop watching ``conn`` before it closes
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sending
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _close(headers: bytes) -> bytes:
    """Pass headers on, minus hop-by-hop ones, asking for one request per connection."""
    kept = [
        line
        for line in headers.split(b"\r\n")
        if line and not line.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([*kept, b"Connection: close", b"", b""])


async def _reply(loop: asyncio.AbstractEventLoop, conn: socket.socket, status: int, message: str) -> None:
    body = f"git-airlock egress: {message}\n".encode()
    with contextlib.suppress(OSError):
        await tunnel.send_all(
            loop,
            conn,
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body,
        )


class JsonLog:
    """Appends one JSON object per connection attempt to a file (opened once).

    Lines are written when the event loop has run what is ready, so a burst of
    connections costs one write, and ``net --follow`` still sees each at once.
    A sandbox decides how many attempts it makes, so the file is bounded: past
    ``MAX_LOG`` bytes it becomes ``<file>.1`` (replacing the one before) and a new
    file starts. Logging is best effort: a full disk drops lines, never the gate.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the proxy)
        self.size = os.fstat(self.handle.fileno()).st_size
        self.pending: list[str] = []

    def __call__(self, entry: Attempt) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(json.dumps(entry) + "\n")

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        try:
            chunk: list[str] = []
            for line in lines:
                if self.size + len(line) > MAX_LOG and self.size:
                    self.handle.write("".join(chunk))
                    chunk.clear()
                    self._rotate()
                chunk.append(line)
                self.size += len(line)
            self.handle.write("".join(chunk))
            self.handle.flush()
        except (OSError, ValueError):  # a full disk, or a rotation that failed half-way
            pass

    def _rotate(self) -> None:
        self.handle.close()
        os.replace(self.path, self.path + ".1")
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (replaces the one closed)
        self.size = 0

    def close(self) -> None:
        if self.pending:
            self.flush()
        self.handle.close()
