"""A loopback stand-in for Google's Gemini API, enough to drive a real Gemini CLI through one shell command.

Why a stand-in: the tests that start the real Gemini CLI in a sandbox must prove where its requests go and
what credential they carry, which a real API (a real key, the internet, a model's whims) cannot show
deterministically. This server speaks HTTPS on 127.0.0.1 with a certificate for
``generativelanguage.googleapis.com`` (and 127.0.0.1) signed by an authority ``openssl`` makes for it, so the
egress gate, which checks the API host's certificate before it sends the key, can be pointed at it
(``AIRLOCK_SERVICE_URLS`` and ``AIRLOCK_EGRESS_RESOLVE``) with the authority trusted through
``SSL_CERT_FILE``; Gemini CLI on the host can talk to it directly the same way
(``GOOGLE_GEMINI_BASE_URL=https://127.0.0.1:PORT``, ``NODE_EXTRA_CA_CERTS``), for comparison.

What it answers (the routes of the ``@google/genai`` SDK that Gemini CLI calls, in the API's shapes):

- ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` and ``:generateContent`` whose request
  offers the shell tool (``run_shell_command``) and whose conversation holds no call of it yet: a
  ``functionCall`` of that tool running :attr:`GeminiApi.command`;
- the same whose conversation's last turn carries the tool's ``functionResponse``: a final text;
- any other of them (a side call: the model router's classifier, a next-speaker check): a short text, or,
  when the request asks for JSON (``responseMimeType``), an object holding every property its schema
  requires, each enum at its first value;
- ``POST /v1beta/models/{model}:countTokens``: a token count;
- ``GET /v1beta/models`` and ``GET /v1beta/models/{model}``: the model list, the model;
- anything else: a 404 in the API's error format.

A streamed answer is server-sent events, one ``GenerateContentResponse`` each (a text in two pieces), the
last with the finish reason and the token usage; the stream ends with the connection. Every request is
recorded whole (method, path with its query, headers, JSON body) for the test to assert on.
"""

from __future__ import annotations

import http.server
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes import standin
from fakes.responses_api import certificate
from fakes.standin import Handler, StandIn

HOST_NAME = "generativelanguage.googleapis.com"
SHELL_TOOL = "run_shell_command"
"""Gemini CLI's shell tool (packages/core/src/tools/shell.ts), whose one required argument is ``command``."""
ROUTE = re.compile(r"^/(?P<version>v1(?:alpha|beta)?)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
MODELS = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
)


class Request(standin.Request):
    """One request as the server received it."""

    @property
    def method_name(self) -> str:
        """The API method of a ``models/{model}:method`` route (``streamGenerateContent``); empty otherwise."""
        found = ROUTE.match(self.route)
        return found["method"] if found else ""

    @property
    def model(self) -> str:
        found = ROUTE.match(self.route)
        return found["model"] if found else ""

    def contents(self) -> list[dict[str, Any]]:
        """The conversation (``contents``), turns as dicts."""
        turns = (self.body or {}).get("contents") or []
        return [turn for turn in turns if isinstance(turn, dict)] if isinstance(turns, list) else []

    def parts(self) -> list[dict[str, Any]]:
        """Every part of every turn, in order."""
        return [part for turn in self.contents() for part in turn.get("parts") or [] if isinstance(part, dict)]

    def function_responses(self) -> list[dict[str, Any]]:
        """The ``functionResponse`` parts of the conversation's last turn: tool results sent back."""
        turns = self.contents()
        last = turns[-1].get("parts") or [] if turns else []
        return [part["functionResponse"] for part in last if isinstance(part, dict) and "functionResponse" in part]

    def function_declarations(self) -> list[dict[str, Any]]:
        """Every function the request offers the model."""
        tools = (self.body or {}).get("tools") or []
        return [
            declaration
            for tool in tools
            if isinstance(tool, dict)
            for declaration in tool.get("functionDeclarations") or []
            if isinstance(declaration, dict)
        ]

    def tool_names(self) -> list[str]:
        return [declaration.get("name", "") for declaration in self.function_declarations()]

    def generation_config(self) -> dict[str, Any]:
        config = (self.body or {}).get("generationConfig") or (self.body or {}).get("config") or {}
        return config if isinstance(config, dict) else {}


@dataclass
class Reply:
    """What the model "says": the parts of its turn, and which scripted answer this is."""

    parts: list[dict[str, Any]]
    kind: str
    """``function_call`` (the shell tool's call), ``final``, ``side`` or ``json`` (a side call asking for JSON)."""


class GeminiApi(StandIn[Request]):
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
        self.authority, cert, key = certificate(directory, HOST_NAME)
        """The authority that signed the server's certificate: what clients trust."""
        super().__init__(cert, key, _handler(self))

    def reply_for(self, request: Request) -> Reply:
        """The scripted answer to a generateContent or streamGenerateContent request."""
        if any(response.get("name") == SHELL_TOOL for response in request.function_responses()):
            return Reply([{"text": self.final}], "final")
        earlier_call = any("functionCall" in part for part in request.parts())
        if not earlier_call and SHELL_TOOL in request.tool_names():
            call = {"name": SHELL_TOOL, "args": {"command": self.command, "description": "commit hello.txt"}}
            return Reply([{"functionCall": call}], "function_call")
        config = request.generation_config()
        if config.get("responseMimeType") == "application/json":
            schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
            return Reply([{"text": json.dumps(_instance(schema))}], "json")
        return Reply([{"text": self.side}], "side")


def _instance(schema: Any) -> Any:
    """A value that satisfies the simple JSON schemas Gemini CLI's side calls ask for: required
    properties only, an enum's first value, a number's least (the router's complexity score runs from 1),
    a string's placeholder."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        properties = schema.get("properties") or {}
        wanted = schema.get("required") or list(properties)
        return {name: _instance(properties.get(name)) for name in wanted}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "stand-in"


def _handler(api: GeminiApi) -> type[http.server.BaseHTTPRequestHandler]:
    class _Handler(Handler):
        def _handle(self) -> None:
            request = Request(self.command, self.path, self.lowered_headers(), self.json_body())
            api.record(request)
            method = request.method_name
            if self.command == "POST" and method in ("generateContent", "streamGenerateContent"):
                self._generate(request, stream=method == "streamGenerateContent")
            elif self.command == "POST" and method == "countTokens":
                self._json(200, {"totalTokens": max(1, len(json.dumps(request.body)) // 4)})
            elif self.command == "GET" and request.route in ("/v1beta/models", "/v1/models"):
                self._json(200, {"models": [_model(name) for name in MODELS]})
            elif self.command == "GET" and request.route.startswith(("/v1beta/models/", "/v1/models/")):
                name = request.route.rsplit("/", 1)[1]
                if name in MODELS:
                    self._json(200, _model(name))
                else:
                    self._error(404, f"models/{name} is not found", "NOT_FOUND")
            else:
                self._error(404, f"The requested URL {request.route} was not found on this server.", "NOT_FOUND")

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, message: str, code: str) -> None:
            self._json(status, {"error": {"code": status, "message": message, "status": code}})

        def _generate(self, request: Request, stream: bool) -> None:
            reply = api.reply_for(request)
            api.answered(request, reply.kind)
            chunks = _chunks(reply, request.model or "gemini-stand-in", api.next_id("resp"))
            if not stream:
                whole = {**chunks[-1], "candidates": [{**chunks[-1]["candidates"][0], "content": _turn(reply.parts)}]}
                self._json(200, whole)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")  # no length, no chunks: the stream ends with the connection
            self.end_headers()
            self.close_connection = True
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                self.wfile.flush()

    return _Handler


def _turn(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "model", "parts": parts}


def _chunks(reply: Reply, model: str, response_id: str) -> list[dict[str, Any]]:
    """The streamed form of ``reply``: a text in two pieces, a function call whole, the last chunk with the
    finish reason and the token usage (what the API streams)."""
    pieces: list[list[dict[str, Any]]] = []
    for part in reply.parts:
        text = part.get("text")
        if isinstance(text, str) and len(text) > 1:
            pieces += [[{"text": text[: len(text) // 2]}], [{"text": text[len(text) // 2 :]}]]
        else:
            pieces.append([part])
    chunks = [
        {"candidates": [{"content": _turn(parts), "index": 0}], "modelVersion": model, "responseId": response_id}
        for parts in pieces
    ]
    usage = {"promptTokenCount": 25, "candidatesTokenCount": 12, "totalTokenCount": 37}
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = usage
    return chunks


def _model(name: str) -> dict[str, Any]:
    """A model as ``models.get`` and ``models.list`` describe it."""
    return {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "001",
        "displayName": name,
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
