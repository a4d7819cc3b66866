"""A loopback stand-in for Anthropic's Messages API, enough to drive a real Claude Code through one tool call.

Why a stand-in: the tests that start the real Claude Code in a sandbox must prove where its requests go
and what credential they carry, which a real API (a real key, the internet, a model's whims) cannot show
deterministically. This server speaks HTTPS on 127.0.0.1 with a certificate made by ``openssl`` for
``api.anthropic.com`` (and 127.0.0.1), so the egress gate, which checks the API host's certificate before
it sends the key, can be pointed at it (``AIRLOCK_SERVICE_URLS`` and ``AIRLOCK_EGRESS_RESOLVE``) with the
certificate trusted through ``SSL_CERT_FILE``.

What it answers, the way the real API does (streaming as server-sent events when the request asks for
``stream``, one JSON message otherwise):

- ``POST /v1/messages`` whose request offers the scripted tool (``Bash``) and whose conversation holds no
  tool result yet: a ``tool_use`` of that tool running :attr:`MessagesApi.command` (the input streamed as
  ``input_json_delta`` fragments), ``stop_reason`` ``tool_use``;
- ``POST /v1/messages`` whose last user turn carries a ``tool_result``: a final text, ``end_turn``;
- any other ``POST /v1/messages`` (a side call, for a session title say): a short text;
- ``POST /v1/messages/count_tokens``: a token count;
- anything else (Claude Code's ``HEAD /``, which warms its connection up): a 404 in the API's error format.

Every request is recorded whole (method, path with its query, headers, JSON body) for the test to assert on.
"""

from __future__ import annotations

import http.server
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fakes import standin
from fakes.standin import Handler, StandIn

HOST_NAME = "api.anthropic.com"


def certificate(directory: Path, name: str = HOST_NAME) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for ``name`` and 127.0.0.1, made by openssl.

    The name is what the egress gate checks when it dials the API host; the address lets a client on the
    host talk to the server directly (``ANTHROPIC_BASE_URL=https://127.0.0.1:PORT``) for comparison."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Request(standin.Request):
    """One request as the server received it."""

    def tool_results(self) -> list[dict]:
        """The ``tool_result`` blocks of the conversation's last user turn."""
        messages = (self.body or {}).get("messages") or []
        if not messages or messages[-1].get("role") != "user" or isinstance(messages[-1].get("content"), str):
            return []
        return [block for block in messages[-1]["content"] if block.get("type") == "tool_result"]

    def tool_names(self) -> list[str]:
        """The names of the tools the request offers the model."""
        return [tool.get("name", "") for tool in (self.body or {}).get("tools") or []]


@dataclass
class Reply:
    """What the model "says": content blocks and why it stopped."""

    content: list[dict]
    stop_reason: str
    kind: str
    """Which of the scripted answers this is (``tool_use``, ``final``, ``side``), for assertions."""


class MessagesApi(StandIn[Request]):
    """The HTTPS server, serving from its own thread until :meth:`stop`.

    ``command``: what the scripted ``tool`` (Claude Code's ``Bash``) is asked to run, once, in the first
    request that offers it. ``final``: the text that ends the turn once the tool's result came back."""

    def __init__(
        self,
        cert: Path,
        key: Path,
        command: str,
        final: str = "Done: hello.txt is committed.",
        side: str = "Hello file",
        tool: str = "Bash",
    ) -> None:
        self.command, self.final, self.side, self.tool = command, final, side, tool
        self.cert = cert
        """The certificate, which clients trust as its own authority."""
        super().__init__(cert, key, _handler(self))

    def reply_for(self, request: Request) -> Reply:
        """The scripted answer to a /v1/messages request."""
        if request.tool_results():
            return Reply([{"type": "text", "text": self.final}], "end_turn", "final")
        body = request.body or {}
        earlier_use = any(
            isinstance(message.get("content"), list)
            and any(block.get("type") == "tool_use" for block in message["content"])
            for message in body.get("messages") or []
            if message.get("role") == "assistant"
        )
        if self.tool in request.tool_names() and not earlier_use:
            use = {
                "type": "tool_use",
                "id": self.next_id("toolu"),
                "name": self.tool,
                "input": {"command": self.command, "description": "Create hello.txt and commit it"},
            }
            return Reply(
                [{"type": "text", "text": "I will create the file and commit it."}, use], "tool_use", "tool_use"
            )
        return Reply([{"type": "text", "text": self.side}], "end_turn", "side")


def _handler(api: MessagesApi) -> type[http.server.BaseHTTPRequestHandler]:
    class _Handler(Handler):
        def _handle(self) -> None:
            request = Request(self.command, self.path, self.lowered_headers(), self.json_body())
            api.record(request)
            route = request.route
            if self.command == "POST" and route == "/v1/messages/count_tokens":
                self._json(200, {"input_tokens": 42})
            elif self.command == "POST" and route == "/v1/messages":
                self._messages(request)
            else:
                error = {"type": "not_found_error", "message": f"the stand-in does not serve {self.command} {route}"}
                self._json(404, {"type": "error", "error": error})

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", api.next_id("req"))
            self.end_headers()
            if self.command != "HEAD":  # Claude Code's HEAD / warms the connection up: no body may follow
                self.wfile.write(data)

        def _messages(self, request: Request) -> None:
            reply = api.reply_for(request)
            api.answered(request, reply.kind)
            body = request.body or {}
            message = {
                "id": api.next_id("msg"),
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "claude-stand-in"),
                "content": reply.content,
                "stop_reason": reply.stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 12},
            }
            if not body.get("stream"):
                self._json(200, message)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("request-id", api.next_id("req"))
            self.send_header("Connection", "close")  # no length, no chunks: the stream ends with the connection
            self.end_headers()
            self.close_connection = True
            for event in _events(message):
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()

    return _Handler


def _events(message: dict) -> list[dict]:
    """The streaming form of ``message``, as the API sends it: message_start, per block a start, deltas
    (text in two pieces, tool input as partial JSON in two pieces) and a stop, message_delta, message_stop."""
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 25, "output_tokens": 1}}
    events: list[dict] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            text = block["text"]
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                events.append(
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
                )
        else:
            opening = {**block, "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": opening})
            encoded = json.dumps(block["input"])
            for piece in (encoded[: len(encoded) // 2], encoded[len(encoded) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events
