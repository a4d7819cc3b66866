"""The contract every sandbox engine fulfils.

Engines never print and never run anything themselves: they return
:class:`~git_airlock.plan.Step`/:class:`~git_airlock.plan.Plan` objects that a
Runner executes or, under ``--dry-run``, prints. Queries come back as a Step
plus a parser for its output, so state checks are also visible in a dry run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from git_airlock.plan import Plan, Step


@dataclass(frozen=True)
class SandboxState:
    name: str
    status: str
    """'running' or 'stopped' (engines map their own words onto these)."""
    agent: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class SeedFile:
    source: str
    """Absolute path on the host."""
    target: str
    """Absolute path inside the sandbox."""


class Engine(Protocol):
    name: str

    def executable(self) -> str | None:
        """Path of the engine's CLI, or None when it is not installed."""

    def list_step(self) -> Step: ...

    def parse_list(self, output: str) -> dict[str, SandboxState]: ...

    def create_plan(self, name: str, agent: str, repo_root: str, agent_args: list[str], seeds: list[SeedFile]) -> Plan:
        """Create the sandbox in clone mode and start the agent."""

    def agent_argv(self, name: str, agent: str, repo_root: str, agent_args: list[str]) -> list[str]:
        """The one command that (creates and) runs the agent, for wrapping in tmux."""

    def start_step(self, name: str) -> Step:
        """Start a stopped sandbox without attaching to it (so its clone can be fetched)."""

    def shell_step(self, name: str) -> Step: ...

    def stop_step(self, name: str) -> Step: ...

    def remove_step(self, name: str) -> Step: ...

    def sandbox_home(self) -> str: ...
