"""HTTP request heads as the egress gate reads them: strictly, so that whatever it passes on means the
same to every server behind it, and the error answers it gives instead.

A bare LF, a control character, a folded line or a space before a colon could let a client smuggle
its own request line or ``Host`` past the gate's view of a request (and, on a credential endpoint,
around the credential the gate adds), so each is refused rather than repaired.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket

from git_airlock.egress import tunnel

_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")
_ABSOLUTE = re.compile(r"^http://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^ ]*)?$")
"""Host names are read loosely here, then checked by ``names.valid_host``; the log keeps 255 characters."""
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
"""Visible ASCII only: no space, tab, CR, LF or other control byte in a request target."""
_HEADER = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*")
"""``name: value`` with a token name, no whitespace before the colon, no control byte but tab."""
REASONS = {
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


class Refused(Exception):
    """A request the proxy answers with an error status instead of serving."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def destination(method: str, target: str, headers: bytes, rest: bytes) -> tuple[str, int, bytes]:
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
        forward = f"{method} {match['path'] or '/'} HTTP/1.1\r\n".encode("latin-1") + close(headers) + rest
    if not 0 < port < 65536:
        raise Refused(400, "bad port")
    return host.lower(), port, forward


def parse_head(head: bytes) -> tuple[str, str, bytes]:
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


def close(headers: bytes) -> bytes:
    """Pass headers on, minus hop-by-hop ones, asking for one request per connection."""
    kept = [
        line
        for line in headers.split(b"\r\n")
        if line and not line.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([*kept, b"Connection: close", b"", b""])


async def reply(loop: asyncio.AbstractEventLoop, conn: socket.socket, status: int, message: str) -> None:
    body = f"git-airlock egress: {message}\n".encode()
    with contextlib.suppress(OSError):
        await tunnel.send_all(
            loop,
            conn,
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body,
        )
