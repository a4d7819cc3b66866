"""The contract every sandbox engine fulfils.

Engines never print: they return :class:`~git_airlock.plan.Plan` objects
(argument lists, plus in-process calls with a description) that a Runner
executes or, under ``--dry-run``, prints. So what a dry run shows is what a
real run does, for every engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from git_airlock.plan import Plan, Runner, Step


@dataclass(frozen=True)
class SandboxState:
    name: str
    status: str
    """'running' or 'stopped' (engines map their own words onto these)."""
    agent: str = ""
    detail: str = ""
    """Engine-specific facts for `status` (processes, clone path)."""

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class SeedFile:
    source: str
    """Absolute path on the host."""
    target: str
    """Absolute path inside the sandbox."""


@dataclass(frozen=True)
class SandboxSpec:
    """Everything an engine needs to create and start one sandbox."""

    name: str
    agent: str
    repo_root: str
    """The main worktree of the host repository."""
    common_dir: str = ""
    network: str = "balanced"
    """allow-all, balanced or deny-all."""
    pass_env: tuple[str, ...] = field(default_factory=tuple)
    """Host environment variables the user chose to hand to the agent."""
    resolve: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Host name -> address overrides for the egress proxy."""
    service_urls: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Model API service -> URL overrides for the egress gate's credential endpoints."""
    extra_hosts: tuple[str, ...] = field(default_factory=tuple)
    """Hosts of custom presets (git config airlock.preset.*), allowed in balanced mode."""
    tmp_size: int = 2 * 1024**3
    """Bytes each in-memory scratch file system of the sandbox may hold (/tmp, /var/tmp, /dev/shm)."""
    dry_run: bool = False
    """Plan only: engines must not probe the system (they assume what a real run would most likely do)."""


class Engine(Protocol):
    name: str
    install_hint: str
    policy_reset_stops_sandboxes: bool

    def executable(self) -> str | None:
        """Path of the engine's main program, or None when it is not installed."""

    def sandbox_home(self) -> str:
        """HOME inside the sandbox (where --seed-config puts files)."""

    def state(self, runner: Runner, name: str) -> SandboxState | None:
        """The sandbox's state; None when absent (and in a dry run, after showing the query)."""

    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        """What creates (or, when ``exists``, restarts) the sandbox, and the step that runs the agent in it."""

    def fetch_plan(self, name: str, running: bool) -> Plan:
        """What must happen before the host fetches from the sandbox's clone (may be nothing)."""

    def upload_pack(self, name: str) -> str | None:
        """The command a host-side fetch starts to read the sandbox's clone (``git fetch --upload-pack``),
        or None when the remote serves itself (sbx's git daemon)."""

    def shell_plan(self, name: str) -> Plan: ...

    def stop_plan(self, name: str) -> Plan: ...

    def remove_plan(self, name: str, repo_root: str) -> Plan: ...

    def policy_init_plan(self, mode: str) -> Plan: ...

    def lockdown_plan(self, name: str, hosts: list[str]) -> Plan: ...

    def unlock_plan(self, name: str | None, mode: str) -> Plan: ...

    def net_plan(self, name: str | None) -> Plan: ...
