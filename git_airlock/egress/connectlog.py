"""The egress gate's connection log: one JSON line per attempt, bounded in size."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Literal, TypedDict

MAX_LOG = 16 * 1024 * 1024
"""Bytes of connection log per file; one older file is kept beside it."""


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
