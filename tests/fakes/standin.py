"""What the loopback stand-ins of model APIs share: an HTTPS server on 127.0.0.1 in a thread of its own,
a record of every request, and the plumbing of a request handler.

Each stand-in (``messages_api``, ``responses_api``) adds only its API: its routes and its answers.
"""

from __future__ import annotations

import http.server
import itertools
import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit


@dataclass
class Request:
    """One request as a stand-in received it; each stand-in adds what its API's requests hold."""

    method: str
    path: str
    """With the query string (Claude Code sends ``/v1/messages?beta=true``)."""
    headers: dict[str, str]
    """Names in lower case."""
    body: Any = None
    """The JSON body, parsed; None without one."""

    @property
    def route(self) -> str:
        """The path without its query."""
        return urlsplit(self.path).path


RequestT = TypeVar("RequestT", bound=Request)
StandInT = TypeVar("StandInT", bound="StandIn[Any]")


class StandIn(Generic[RequestT]):
    """The HTTPS server, serving from its own thread until :meth:`stop`, with the requests it received
    and, for each request a scripted answer went to, the kind of answer."""

    def __init__(self, cert: Path, key: Path, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.requests: list[RequestT] = []
        self.replies: list[tuple[RequestT, str]] = []
        self._lock = threading.Condition()
        """Guards the records; notified at each answer, for :meth:`wait_for_reply`."""
        self._ids = itertools.count(1)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        self.server = _Server(("127.0.0.1", 0), handler)
        # the handshake happens in the request's own thread (see Handler.setup): a client that
        # stalls it holds that thread only, never the accept loop
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def seen(self) -> list[RequestT]:
        """A copy of what was received so far (the serving threads keep appending)."""
        with self._lock:
            return list(self.requests)

    def wait_for_reply(self, kind: str, timeout: float) -> RequestT | None:
        """The first request that got a ``kind`` answer, waiting up to ``timeout`` seconds for it (woken by
        each answer, not by polling); None if none came."""

        def found() -> RequestT | None:
            return next((request for request, given in self.replies if given == kind), None)

        with self._lock:
            return self._lock.wait_for(found, timeout)

    def record(self, request: RequestT) -> None:
        with self._lock:
            self.requests.append(request)

    def answered(self, request: RequestT, kind: str) -> None:
        with self._lock:
            self.replies.append((request, kind))
            self._lock.notify_all()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_stand_in_{next(self._ids):04d}"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or fails the handshake (the gate probing, a test ending) is not news."""


class Handler(http.server.BaseHTTPRequestHandler):
    """A quiet handler that finishes the TLS handshake in its own thread and reads JSON bodies."""

    protocol_version = "HTTP/1.1"  # keep-alive for JSON answers; a stream ends with the connection

    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def json_body(self) -> Any:
        """The request's body, parsed as JSON (None without one; what is not JSON, kept as text)."""
        raw = self._read_body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return {"unparsed": raw.decode("utf-8", "replace")}

    def lowered_headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
