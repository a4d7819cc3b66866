"""Reaching a destination for the egress gate: connecting within a deadline, and relaying a client's
plain connection over verified TLS to a credential endpoint's API host."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket

from git_airlock.egress import tunnel
from git_airlock.egress.connectlog import Attempt


async def connect(loop: asyncio.AbstractEventLoop, address: str, port: int, deadline: float) -> socket.socket:
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


async def bridge_tls(
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
