"""A loopback stand-in for OpenAI's Responses API, enough to drive a real Codex CLI through one shell command.

Why a stand-in: the tests that start the real Codex in a sandbox must prove where its requests go and what
credential they carry, which a real API (a real key, the internet, a model's whims) cannot show
deterministically. This server speaks HTTPS on 127.0.0.1 with a certificate for ``api.openai.com`` (and
127.0.0.1) signed by an authority ``openssl`` makes for it, so the egress gate, which checks the API host's
certificate before it sends the key, can be pointed at it (``AIRLOCK_SERVICE_URLS`` and
``AIRLOCK_EGRESS_RESOLVE``) with the authority trusted through ``SSL_CERT_FILE``; Codex on the host can talk
to it directly the same way, for comparison.

What it answers (Codex 0.171's requests, as recorded against it):

- ``GET /v1/responses`` asking for a WebSocket upgrade (Codex tries its WebSocket transport first, and falls
  back to plain HTTPS requests): ``426 Upgrade Required``, which makes Codex fall back at once (its own test
  servers answer so), when the request names ``upgrade`` in ``Connection`` as a client's upgrade does; when
  it does not (the gate's credential endpoint sends ``Connection: close``), the upgrade is not one, and the
  request gets what the real API answers a plain ``GET /v1/responses``: 404, ``Invalid URL``;
- ``POST /v1/responses`` whose input holds no tool output yet and whose request offers a way to run a
  shell command: a call of that tool running :attr:`ResponsesApi.command`. Codex offers one of two
  toolsets: its default model gets "code mode", a freeform ``exec`` tool that runs JavaScript which calls
  ``tools.exec_command({cmd})`` (answered with a ``custom_tool_call``), and a model it has no metadata for
  gets the classic ``exec_command`` function (answered with a ``function_call``);
- ``POST /v1/responses`` whose input carries the tool's output (``custom_tool_call_output`` or
  ``function_call_output``): a final text;
- any other ``POST /v1/responses``: a short text;
- anything else: a 404 in the API's error format.

Answers stream as server-sent events (``response.created``, the output items added and done, text
deltas, ``response.completed``), as Codex asks for ``stream: true``; the stream ends with the connection.
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

HOST_NAME = "api.openai.com"
OUTPUTS = ("custom_tool_call_output", "function_call_output")
"""Input items that carry a tool's result back to the model."""


def certificate(directory: Path, name: str = HOST_NAME) -> tuple[Path, Path, Path]:
    """A certificate authority of the test's own, and a certificate (with its key) it signed for ``name``
    and 127.0.0.1, made by openssl: (authority, certificate, key).

    The name is what the egress gate checks when it dials the API host; the address lets a client on the
    host talk to the server directly (``openai_base_url=https://127.0.0.1:PORT/v1``) for comparison. A
    separate authority rather than one self-signed certificate, because Codex's TLS (rustls) refuses a
    certificate authority presented as the server's own certificate (``CaUsedAsEndEntity``)."""
    authority, authority_key = directory / "stand-in-ca.pem", directory / "stand-in-ca.key"
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    subprocess.run(
        [
            *("openssl", "req", "-x509", *new_key, "-keyout", str(authority_key), "-out", str(authority)),
            *("-days", "2", "-subj", "/CN=git-airlock test authority"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *("openssl", "req", "-x509", *new_key, "-keyout", str(key), "-out", str(cert), "-days", "2"),
            *("-subj", f"/CN={name}", "-CA", str(authority), "-CAkey", str(authority_key)),
            *("-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"),
            *("-addext", "extendedKeyUsage=serverAuth"),
        ],
        check=True,
        capture_output=True,
    )
    return authority, cert, key


class Request(standin.Request):
    """One request as the server received it."""

    @property
    def websocket(self) -> bool:
        """Whether the request asks for a WebSocket (its ``Upgrade`` header), honoured or not."""
        return self.headers.get("upgrade", "").lower() == "websocket"

    @property
    def upgrade(self) -> bool:
        """Whether it is an upgrade a server acts on: HTTP/1.1 wants ``upgrade`` named in ``Connection`` too,
        and a server ignores an ``Upgrade`` header without it (RFC 9110, 7.8)."""
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        return self.websocket and "upgrade" in tokens

    def input_items(self) -> list[dict]:
        """The conversation Codex sends (the Responses API's ``input``)."""
        items = (self.body or {}).get("input") or []
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    def tool_outputs(self) -> list[dict]:
        """The tool results in the conversation."""
        return [item for item in self.input_items() if item.get("type") in OUTPUTS]

    def tools(self) -> list[dict]:
        """Every tool the request offers, flattened: those in ``tools`` and those Codex sends as an
        ``additional_tools`` input item, namespaces opened up."""
        found: list[dict] = []

        def walk(tools: list) -> None:
            for tool in tools:
                if not isinstance(tool, dict):
                    continue
                if tool.get("type") == "namespace":
                    walk(tool.get("tools") or [])
                else:
                    found.append(tool)

        walk((self.body or {}).get("tools") or [])
        for item in self.input_items():
            if item.get("type") == "additional_tools":
                walk(item.get("tools") or [])
        return found

    def tool_names(self) -> list[str]:
        return [tool.get("name", "") for tool in self.tools()]


@dataclass
class Reply:
    """What the model "says": output items, and which scripted answer this is."""

    output: list[dict]
    kind: str
    """``code_mode`` (a custom ``exec`` call), ``function`` (an ``exec_command`` call), ``final`` or ``side``."""


class ResponsesApi(StandIn[Request]):
    """The HTTPS server, serving from its own thread until :meth:`stop`.

    ``directory``: where its certificates are made. ``command``: what the scripted shell call runs, once.
    ``final``: the text that ends the task once the command's output came back."""

    def __init__(
        self,
        directory: Path,
        command: str,
        final: str = "Done: hello.txt is committed.",
        side: str = "Hello file",
    ) -> None:
        self.command, self.final, self.side = command, final, side
        self.authority, cert, key = certificate(directory)
        """The authority that signed the server's certificate: what clients trust (``SSL_CERT_FILE``)."""
        super().__init__(cert, key, _handler(self))

    def reply_for(self, request: Request) -> Reply:
        """The scripted answer to a POST /v1/responses."""
        if request.tool_outputs():
            return Reply([self._message(self.final)], "final")
        earlier_call = any(item.get("type") in ("custom_tool_call", "function_call") for item in request.input_items())
        tools = {tool.get("name"): tool for tool in request.tools()}
        call_id = self.next_id("call")
        if not earlier_call and tools.get("exec", {}).get("type") == "custom":
            source = (
                f"const result = await tools.exec_command({{cmd: {json.dumps(self.command)}}});\ntext(result.output);\n"
            )
            item = {
                "type": "custom_tool_call",
                "id": self.next_id("ctc"),
                "call_id": call_id,
                "name": "exec",
                "input": source,
                "status": "completed",
            }
            return Reply([item], "code_mode")
        if not earlier_call and "exec_command" in tools:
            item = {
                "type": "function_call",
                "id": self.next_id("fc"),
                "call_id": call_id,
                "name": "exec_command",
                "arguments": json.dumps({"cmd": self.command}),
                "status": "completed",
            }
            return Reply([item], "function")
        return Reply([self._message(self.side)], "side")

    def _message(self, text: str) -> dict:
        return {
            "type": "message",
            "id": self.next_id("msg"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }


def _handler(api: ResponsesApi) -> type[http.server.BaseHTTPRequestHandler]:
    class _Handler(Handler):
        def _handle(self) -> None:
            request = Request(self.command, self.path, self.lowered_headers(), self.json_body())
            api.record(request)
            if request.upgrade:
                self._error(426, "the stand-in speaks plain HTTP requests only")
            elif self.command == "POST" and request.route == "/v1/responses":
                self._responses(request)
            else:  # the real API's answer to a route it does not have
                self._error(404, f"Invalid URL ({self.command} {request.route})")

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        def _error(self, status: int, message: str) -> None:
            error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
            data = json.dumps({"error": error}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", api.next_id("req"))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _responses(self, request: Request) -> None:
            reply = api.reply_for(request)
            api.answered(request, reply.kind)
            body = request.body or {}
            response = {
                "id": api.next_id("resp"),
                "object": "response",
                "created_at": 1767225600,
                "status": "in_progress",
                "model": body.get("model", "gpt-stand-in"),
                "output": [],
                "usage": None,
            }
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("x-request-id", api.next_id("req"))
            self.send_header("Connection", "close")  # no length, no chunks: the stream ends with the connection
            self.end_headers()
            self.close_connection = True
            for event in _events(response, reply.output):
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()

    return _Handler


def _events(response: dict, output: list[dict]) -> list[dict]:
    """The streaming form of a response with ``output``, as the API sends it: ``response.created``, per
    item ``output_item.added``, its deltas (text in two pieces) and ``output_item.done``, then
    ``response.completed`` with the whole output and the token usage."""
    events: list[dict] = [{"type": "response.created", "response": response}]
    for index, item in enumerate(output):
        opening = {**item, "status": "in_progress"}
        if item["type"] == "message":
            opening["content"] = []
        events.append({"type": "response.output_item.added", "output_index": index, "item": opening})
        if item["type"] == "message":
            text = item["content"][0]["text"]
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                events.append(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "delta": piece,
                    }
                )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    usage = {
        "input_tokens": 25,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 37,
    }
    done = {**response, "status": "completed", "output": output, "usage": usage}
    events.append({"type": "response.completed", "response": done})
    return events
