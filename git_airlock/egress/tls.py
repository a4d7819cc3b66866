"""A look at the TLS ClientHello that opens a CONNECT tunnel: does its server name match the target?

The gate allows a tunnel by its ``CONNECT host:port``, but a TLS front end (a
CDN, a shared load balancer) routes by the server name (SNI) inside the
ClientHello: ``CONNECT allowed.example:443`` carrying ``server_name =
unallowed.example`` reaches a host no rule names (domain fronting). So before
it splices anything the gate peeks (``MSG_PEEK``) at the client's first TLS
record and closes the tunnel if it names another host. Nothing is decrypted
and nothing is copied: the bytes stay in the kernel for ``splice``.

The client is hostile, so the parser is strict and refuses what it cannot
read whole: one record of at most 16 KiB holding exactly one ClientHello,
every length inside its parent, no extension twice, one host name. A looser
reader would let a client put the name where the gate does not look (a second
record, a second extension or entry) but the front end does.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TypedDict

from git_airlock.egress import names, tunnel

HANDSHAKE = 0x16
"""A TLS record's first byte when it carries a handshake message (a ClientHello)."""
MAX_RECORD = 5 + (1 << 14)
"""A record header and the largest plaintext fragment TLS allows."""
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_HOST_NAME = 0


class Malformed(ValueError):
    """A first record the gate will not pass on (it says what is wrong)."""


class _Reader:
    """Fields of a TLS structure in order; a length that runs past the end raises ``Malformed``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        if count > self.left():
            raise Malformed("a length runs past its end")
        self.pos += count
        return self.data[self.pos - count : self.pos]

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> _Reader:
        """The field behind a ``size``-byte length, as a reader of its own."""
        return _Reader(self.take(self.number(size)))

    def end(self, what: str) -> None:
        if self.left():
            raise Malformed(f"bytes after {what}")


def record_size(data: bytes) -> int:
    """Bytes of the first record, header included (5 while the header is incomplete); it must be a
    handshake record of TLS (major version 3) no longer than TLS allows."""
    if len(data) < 5:
        return 5
    if data[0] != HANDSHAKE or data[1] != 3:
        raise Malformed("not a TLS handshake record")
    length = int.from_bytes(data[3:5], "big")
    if not 0 < length <= MAX_RECORD - 5:
        raise Malformed(f"a record of {length} bytes")
    return 5 + length


def server_name(record: bytes) -> str | None:
    """The host name a record's ClientHello asks for; None when it names none."""
    size = record_size(record)
    if len(record) < size:
        raise Malformed("a record cut short")
    fragment = _Reader(record[5:size])
    if fragment.number(1) != _CLIENT_HELLO:
        raise Malformed("not a ClientHello")
    hello = fragment.vector(3)
    fragment.end("the ClientHello in its record")
    hello.take(2 + 32)  # legacy version, random
    if hello.vector(1).left() > 32:
        raise Malformed("a session id over 32 bytes")
    suites = hello.vector(2).left()
    if suites < 2 or suites % 2 or hello.vector(1).left() < 1:  # cipher suites, compression methods
        raise Malformed("no cipher suite or compression method")
    if not hello.left():
        return None  # no extensions at all
    extensions = hello.vector(2)
    hello.end("the extensions")
    return _name_in(extensions)


def _name_in(extensions: _Reader) -> str | None:
    seen: set[int] = set()
    name = None
    while extensions.left():
        kind, body = extensions.number(2), extensions.vector(2)
        if kind in seen:
            raise Malformed(f"extension {kind} twice")
        seen.add(kind)
        if kind == _SERVER_NAME:
            name = _host_name(body)
    return name


def _host_name(body: _Reader) -> str:
    """The one host name of a server_name extension (RFC 6066 allows one per type, and only host_name exists)."""
    entries = body.vector(2)
    body.end("the server name list")
    if entries.number(1) != _HOST_NAME:
        raise Malformed("a server name that is not a host name")
    raw = entries.take(entries.number(2))
    entries.end("the first server name")
    if not raw or not raw.isascii():
        raise Malformed("an empty or non-ASCII server name")
    return raw.decode("ascii")


class _Reason(TypedDict):
    reason: str


class Refusal(_Reason, total=False):
    """Why a tunnel must close unused, as fields of its log line."""

    sni: str
    """The server name the client asked for, when it is a host name."""


async def screen(
    loop: asyncio.AbstractEventLoop,
    conn: socket.socket,
    upstream: socket.socket,
    host: str,
    early: bytes,
    deadline: float,
) -> Refusal | None:
    """Why the tunnel ``conn`` -> ``upstream`` (to ``host``) must close unused, as log fields: a
    ``reason``, and the ``sni`` asked for when it is a host name. None lets the tunnel through.

    ``early``: bytes the client sent with its CONNECT head (read already, not yet forwarded).
    A client whose first byte is not a TLS handshake is let through, as is one whose
    server speaks first (a TLS server never does). One that sends nothing until
    ``deadline`` (loop time) is refused: waiting must not get a ClientHello past the look.
    """
    try:
        data = early or await _first_bytes(loop, conn, upstream, deadline)
        if not data or data[0] != HANDSHAKE:
            return None
        while len(data) < (size := record_size(data)):
            data = early + await _peek_more(loop, conn, size - len(early), len(data) - len(early), deadline)
        name = server_name(data[:size])
    except Malformed as exc:
        return {"reason": f"malformed TLS ClientHello: {exc}"}
    except asyncio.TimeoutError:
        return {"reason": "no TLS ClientHello in time"}
    except OSError:
        return {"reason": "the client failed before its TLS ClientHello was complete"}
    if name is None:
        return None
    if names.is_ip(host):
        reason = "a TLS server name (SNI) on a tunnel to an IP address"
    elif not names.same_host(name, host):
        reason = "the TLS server name (SNI) names another host than the CONNECT target"
    else:
        return None
    return {"reason": reason, "sni": name} if names.valid_host(name) else {"reason": reason}


async def _first_bytes(
    loop: asyncio.AbstractEventLoop, conn: socket.socket, upstream: socket.socket, deadline: float
) -> bytes:
    """The client's first bytes, left in place; empty if it left or its server spoke first."""
    await tunnel.readable_any(loop, (conn, upstream), deadline)
    try:
        return conn.recv(MAX_RECORD, socket.MSG_PEEK)
    except BlockingIOError:
        return b""


async def _peek_more(
    loop: asyncio.AbstractEventLoop, conn: socket.socket, want: int, have: int, deadline: float
) -> bytes:
    """Up to ``want`` bytes waiting on ``conn``, more than the ``have`` seen before (else ``Malformed``).

    ``SO_RCVLOWAT`` makes the socket readable only once ``want`` bytes are there (or the
    client ended): peeked bytes stay, so plain readiness would wake the loop at once.
    """
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
    try:
        await tunnel.readable(loop, conn, deadline)
    finally:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)  # the splice must wake for every byte
    try:
        data = conn.recv(want, socket.MSG_PEEK)
    except BlockingIOError:
        data = b""
    if len(data) <= have:
        raise Malformed("the client stopped before its ClientHello was complete")
    return data
