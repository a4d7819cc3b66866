"""Sandbox engines: each turns sandbox operations into Plans of commands."""

from __future__ import annotations

from git_airlock.engines.base import Engine
from git_airlock.errors import AirlockError

ENGINES = ("sbx",)


def get_engine(name: str) -> Engine:
    """The engine called ``name``; imported on demand to keep start-up lean."""
    if name == "sbx":
        from git_airlock.engines.sbx import SbxEngine

        return SbxEngine()
    raise AirlockError(f"unknown engine {name!r}", hint="available engines: " + ", ".join(ENGINES))
