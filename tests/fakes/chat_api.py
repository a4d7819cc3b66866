"""A loopback stand-in for OpenAI's Chat Completions API, enough to drive a real agent through one tool call.

Why a stand-in: the tests that start a real agent in a sandbox must prove where its requests go and what
credential they carry, which a real API (a real key, the internet, a model's whims) cannot show
deterministically. Chat Completions is what OpenAI-compatible endpoints speak and what agents call
"openai-compatible" providers with (Copilot CLI's own-key mode does by default). This server speaks HTTPS
on 127.0.0.1 with a certificate for ``api.openai.com`` (and 127.0.0.1) signed by an authority of the test's
own (``responses_api.certificate``), so the egress gate can be pointed at it (``AIRLOCK_SERVICE_URLS`` and
``AIRLOCK_EGRESS_RESOLVE``) with the authority trusted through ``SSL_CERT_FILE``.

What it answers, the way the real API does (streaming as server-sent ``chat.completion.chunk`` events
ending in ``data: [DONE]`` when the request asks for ``stream``, one ``chat.completion`` otherwise):

- ``POST /v1/chat/completions`` whose request offers the scripted tool (a ``function`` named
  :attr:`ChatApi.tool`) and whose conversation holds no tool call yet: a call of that tool, its arguments
  from :attr:`ChatApi.arguments` (streamed in two pieces), ``finish_reason`` ``tool_calls``;
- ``POST /v1/chat/completions`` whose last message is a tool's result (role ``tool``): a final text;
- any other ``POST /v1/chat/completions`` (a side call, for a session title say): a short text;
- ``GET /v1/models``: one model, the one last asked for;
- anything else: a 404 in the API's error format.

Every request is recorded whole (method, path with its query, headers, JSON body) for the test to assert on.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fakes import standin
from fakes.responses_api import certificate
from fakes.standin import Handler, StandIn

HOST_NAME = "api.openai.com"


class Request(standin.Request):
    """One request as the server received it."""

    def messages(self) -> list[dict]:
        """The conversation the client sends."""
        messages = (self.body or {}).get("messages") or []
        return [message for message in messages if isinstance(message, dict)]

    def tool_results(self) -> list[dict]:
        """The tool results that end the conversation (messages of role ``tool`` after the last other)."""
        found: list[dict] = []
        for message in reversed(self.messages()):
            if message.get("role") != "tool":
                break
            found.insert(0, message)
        return found

    def tool_names(self) -> list[str]:
        """The names of the functions the request offers the model."""
        tools = (self.body or {}).get("tools") or []
        return [str((tool.get("function") or {}).get("name", "")) for tool in tools if isinstance(tool, dict)]

    def tool(self, name: str) -> dict:
        """The function ``name`` as offered (its description and JSON-schema ``parameters``)."""
        tools = (self.body or {}).get("tools") or []
        return next(tool["function"] for tool in tools if (tool.get("function") or {}).get("name") == name)


@dataclass
class Reply:
    """What the model "says": text or tool calls, and why it stopped."""

    message: dict
    finish_reason: str
    kind: str
    """Which of the scripted answers this is (``tool_call``, ``final``, ``side``), for assertions."""


class ChatApi(StandIn[Request]):
    """The HTTPS server, serving from its own thread until :meth:`stop`.

    ``directory``: where its certificates are made. ``command``: what the scripted tool is asked to run,
    once. ``tool``: the function's name; ``arguments``: its arguments for a command (by default the
    ``{"command", "description"}`` of a shell tool). ``final``: the text that ends the task once the tool's
    result came back."""

    def __init__(
        self,
        directory: Path,
        command: str,
        tool: str = "bash",
        arguments: Callable[[str], dict] | None = None,
        final: str = "Done: hello.txt is committed.",
        side: str = "Hello file",
    ) -> None:
        self.command, self.tool, self.final, self.side = command, tool, final, side
        self.arguments = arguments or (lambda command: {"command": command, "description": "Create and commit"})
        self.model = "gpt-stand-in"
        self.authority, cert, key = certificate(directory)
        """The authority that signed the server's certificate: what clients trust (``SSL_CERT_FILE``)."""
        super().__init__(cert, key, _handler(self))

    def reply_for(self, request: Request) -> Reply:
        """The scripted answer to a /v1/chat/completions request."""
        if request.tool_results():
            return Reply({"role": "assistant", "content": self.final}, "stop", "final")
        earlier_call = any(message.get("tool_calls") for message in request.messages())
        if self.tool in request.tool_names() and not earlier_call:
            call = {
                "id": self.next_id("call"),
                "type": "function",
                "function": {"name": self.tool, "arguments": json.dumps(self.arguments(self.command))},
            }
            return Reply({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", "tool_call")
        return Reply({"role": "assistant", "content": self.side}, "stop", "side")


def _handler(api: ChatApi) -> type[http.server.BaseHTTPRequestHandler]:
    class _Handler(Handler):
        def _handle(self) -> None:
            request = Request(self.command, self.path, self.lowered_headers(), self.json_body())
            api.record(request)
            if self.command == "POST" and request.route == "/v1/chat/completions":
                self._completions(request)
            elif self.command == "GET" and request.route == "/v1/models":
                model = {"id": api.model, "object": "model", "created": 1767225600, "owned_by": "stand-in"}
                self._json(200, {"object": "list", "data": [model]})
            else:  # the real API's answer to a route it does not have
                error = {"message": f"Invalid URL ({self.command} {request.route})", "type": "invalid_request_error"}
                self._json(404, {"error": {**error, "param": None, "code": None}})

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", api.next_id("req"))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _completions(self, request: Request) -> None:
            reply = api.reply_for(request)
            api.answered(request, reply.kind)
            body = request.body or {}
            api.model = str(body.get("model") or api.model)
            usage = {"prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37}
            head = {"id": api.next_id("chatcmpl"), "created": 1767225600, "model": api.model}
            if not body.get("stream"):
                choice = {"index": 0, "message": reply.message, "finish_reason": reply.finish_reason, "logprobs": None}
                self._json(200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("x-request-id", api.next_id("req"))
            self.send_header("Connection", "close")  # no length, no chunks: the stream ends with the connection
            self.end_headers()
            self.close_connection = True
            for delta, finish in _deltas(reply):
                chunk = {**head, "object": "chat.completion.chunk"}
                chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if (body.get("stream_options") or {}).get("include_usage"):
                chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return _Handler


def _deltas(reply: Reply) -> list[tuple[dict, str | None]]:
    """The streaming form of ``reply``, as the API sends it: the role, the text in two pieces or each tool
    call opened (id, name) then its arguments in two pieces, and a last empty delta with the finish reason."""
    deltas: list[tuple[dict, str | None]] = [({"role": "assistant", "content": ""}, None)]
    text = reply.message.get("content")
    if text:
        deltas += [({"content": piece}, None) for piece in (text[: len(text) // 2], text[len(text) // 2 :])]
    for index, call in enumerate(reply.message.get("tool_calls") or []):
        opening = {"index": index, "id": call["id"], "type": "function"}
        deltas.append(
            ({"tool_calls": [{**opening, "function": {"name": call["function"]["name"], "arguments": ""}}]}, None)
        )
        arguments = call["function"]["arguments"]
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            deltas.append(({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None))
    deltas.append(({}, reply.finish_reason))
    return deltas
