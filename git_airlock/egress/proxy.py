"""The host-side HTTP proxy every connection out of a bwrap sandbox goes through.

It speaks the two forms clients use through ``HTTP_PROXY``/``HTTPS_PROXY``:
``CONNECT host:port`` (HTTPS and anything tunnelled; the proxy never sees the
content) and absolute-form plain HTTP (``GET http://host/path``). Each
attempt is checked against the rules and logged as one JSON line (time,
sandbox, host, port, allowed/blocked, bytes each way).

Written on asyncio (standard library) rather than a proxy framework: the
job is small (two request forms, no caching, no TLS), and hostile clients
are the normal case here, so every limit is explicit: request heads over
64 KiB are refused (431), clients that do not send a head in time are
dropped (408), a connection cap answers 503 beyond it, upstream connects
time out (504), and every socket is closed on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from git_airlock.egress.rules import Rules

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
MAX_CONNECTIONS = 512
BUFFER = 1 << 20
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")
_ABSOLUTE = re.compile(r"^http://(?P<host>[A-Za-z0-9.-]{1,253})(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^ ]*)?$")


class Proxy:
    """One proxy serving one sandbox's policy; ``resolve`` maps a host name to the address to dial."""

    def __init__(
        self,
        sandbox: str,
        rules: Rules,
        log: Callable[[dict], None],
        resolve: Callable[[str], str] | None = None,
        services: dict[str, dict] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.rules = rules
        self.log = log
        self.resolve = resolve or (lambda host: host)
        self.services = services or {}
        """name -> {"upstream": URL, "header": name, "prefix": str, "secret": value}: credential endpoints."""
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.head_timeout = HEAD_TIMEOUT
        self.open_connections = 0
        self.tasks: set[asyncio.Task] = set()
        self.idle = asyncio.Event()
        """Set whenever no connection is open (tests wait on it instead of sleeping)."""
        self.idle.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio keeps only weak references to tasks: a tunnel whose two sockets are both
        # out of the selector (one half-closed, one draining) would be collected mid-flight
        task = asyncio.current_task()
        self.tasks.add(task)
        self.open_connections += 1
        self.idle.clear()
        try:
            if self.slots.locked():
                await _reply(writer, 503, "too many connections")
                return
            async with self.slots:
                await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.open_connections -= 1
            self.tasks.discard(task)
            if not self.open_connections:
                self.idle.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except asyncio.TimeoutError:
            await _reply(writer, 408, "request head not received in time")
            return
        except asyncio.LimitOverrunError:
            await _reply(writer, 431, "request head too large")
            return
        except asyncio.IncompleteReadError:
            return
        if len(head) > MAX_HEAD:  # the stream's limit is larger, for throughput
            await _reply(writer, 431, "request head too large")
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _reply(writer, 400, "malformed request line")
            return
        method, target, _ = parts
        if target.startswith("/airlock/"):
            await self._service(method, target, rest, reader, writer)
            return
        if method == "CONNECT":
            match = _HOST_PORT.match(target)
            if not match:
                await _reply(writer, 400, "CONNECT needs host:port")
                return
            host, port, forward = match["host"].strip("[]"), int(match["port"]), b""
        else:
            match = _ABSOLUTE.match(target)
            if not match:
                await _reply(writer, 400, "only absolute http:// requests and CONNECT go through this proxy")
                return
            host, port = match["host"], int(match["port"] or 80)
            forward = f"{method} {match['path'] or '/'} HTTP/1.1\r\n".encode("latin-1") + _close(rest)
        if not 0 < port < 65536:
            await _reply(writer, 400, "bad port")
            return
        entry = {"time": time.time(), "sandbox": self.sandbox, "host": host.lower(), "port": port}
        if not self.rules.allows(host, port):
            self.log({**entry, "action": "blocked", "sent": 0, "received": 0})
            await _reply(writer, 403, f"{host}:{port} is not allowed by the sandbox's network policy")
            return
        await self._relay(entry, host.lower(), port, forward, reader, writer, established=method == "CONNECT")

    async def _service(
        self, method: str, target: str, rest: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward to a service's real API, putting the host-held credential on the request."""
        name, _, path = target[len("/airlock/") :].partition("/")
        service = self.services.get(name)
        if service is None or not service.get("secret"):
            await _reply(writer, 404, f"no credential endpoint {name!r} (is a credential stored for it?)")
            return
        upstream = urlsplit(service["upstream"])
        host, tls = upstream.hostname or "", upstream.scheme == "https"
        port = upstream.port or (443 if tls else 80)
        entry = {"time": time.time(), "sandbox": self.sandbox, "host": host, "port": port, "credential": name}
        if not self.rules.allows(host, port):
            self.log({**entry, "action": "blocked", "sent": 0, "received": 0})
            await _reply(writer, 403, f"{host}:{port} is not allowed by the sandbox's network policy")
            return
        dropped = (b"host:", b"x-api-key:", b"authorization:", service["header"].encode().lower() + b":")
        headers = [line for line in _close(rest).split(b"\r\n") if line and not line.lower().startswith(dropped)]
        authority = host if upstream.port is None else f"{host}:{port}"
        head = (
            f"{method} {upstream.path.rstrip('/')}/{path} HTTP/1.1\r\nHost: {authority}\r\n"
            f"{service['header']}: {service.get('prefix', '')}{service['secret']}\r\n"
        ).encode("latin-1")
        head += b"\r\n".join(headers) + b"\r\n\r\n"
        await self._relay(entry, host, port, head, reader, writer, tls=tls)

    async def _relay(
        self,
        entry: dict,
        host: str,
        port: int,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: bool = False,
        established: bool = False,
    ) -> None:
        """Dial the destination, send ``head`` (or confirm a tunnel), then pipe both ways; log once at the end."""
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.resolve(host),
                    port,
                    limit=BUFFER,
                    ssl=ssl.create_default_context() if tls else None,
                    server_hostname=host if tls else None,
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            self.log({**entry, "action": "failed", "sent": 0, "received": 0})
            await _reply(writer, 504 if isinstance(exc, asyncio.TimeoutError) else 502, f"cannot reach {host}:{port}")
            return
        counts = [len(head), 0]
        try:
            if established:
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer, counts, 0), _pipe(up_reader, writer, counts, 1))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()
            self.log({**entry, "action": "allowed", "sent": counts[0], "received": counts[1]})


def _close(headers: bytes) -> bytes:
    """Pass headers on, minus hop-by-hop ones, asking for one request per connection."""
    kept = [
        line
        for line in headers.split(b"\r\n")
        if line and not line.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([*kept, b"Connection: close", b"", b""])


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: list[int], slot: int) -> None:
    try:
        while data := await reader.read(BUFFER):
            counts[slot] += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reasons = {
        400: "Bad Request",
        404: "Not Found",
        403: "Forbidden",
        408: "Request Timeout",
        431: "Request Header Fields Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    body = f"git-airlock egress: {message}\n".encode()
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(
            f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()


class JsonLog:
    """Appends one JSON object per connection attempt to a file (opened once, line-buffered)."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives as long as the proxy)

    def __call__(self, entry: dict) -> None:
        self.handle.write(json.dumps(entry) + "\n")

    def close(self) -> None:
        self.handle.close()
