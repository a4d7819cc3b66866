"""The contract every sandbox engine fulfils.

Engines never print: they return :class:`~git_airlock.plan.Plan` objects
(argument lists, plus in-process calls with a description) that a Runner
executes or, under ``--dry-run``, prints. So what a dry run shows is what a
real run does, for every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from git_airlock.errors import AirlockError
from git_airlock.plan import Plan, Runner, Step

if TYPE_CHECKING:
    from git_airlock.agents import Agent


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


class EngineDefaults:
    """What an engine does when it has nothing of its own to say: engines inherit it, so commands
    never ask which engine they hold."""

    name: str
    network_change_takes_effect = "from now on"
    """When a lockdown or unlock reaches a running sandbox (for the message after it)."""

    def push_risks(self, runner: Runner, name: str | None) -> list[str]:
        """Ways the sandbox ``name`` (None: any) could push to the user's forge without git-airlock,
        for `up` and `doctor` to warn about."""
        return []

    def secret_set_plan(self, service: str, read_value: Callable[[], str | None]) -> Plan | None:
        """What stores SERVICE's credential in the engine's own store; None when git-airlock keeps it itself."""
        return None

    def secret_ls_plan(self) -> Plan | None:
        return None

    def secret_rm_plan(self, service: str) -> Plan | None:
        return None

    def run_problems(self, name: str, since: float) -> list[str]:
        """What went wrong around the agent since ``since`` that it cannot tell the user (blocked hosts,
        a credential the API refused), for after a foreground run."""
        return []

    def auth_note(self, agent: Agent, urls: Mapping[str, str]) -> str:
        """How the agent gets its credential in this engine's sandboxes (``urls``: service URL overrides)."""
        return agent.auth_hint

    def install_agent_plan(self, agent: Agent, update: bool) -> Plan:
        """What installs (or updates) ``agent``'s CLI for every sandbox of this engine."""
        raise AirlockError(
            f"the {self.name} engine's sandboxes come with their agents: nothing to install",
            hint="`git airlock up` starts the agent; sbx keeps it up to date",
        )

    def agent_version(self, agent: Agent) -> str | None:
        """The version of ``agent`` this engine installed, if it installs agents."""
        return None

    def agent_where(self, agent: Agent) -> str:
        """Where a sandbox finds ``agent``'s CLI, for `agents ls`."""
        return f"comes with the {self.name} engine's sandboxes"

    def global_lockdown_plan(self, name: str, hosts: list[str]) -> Plan:
        """Deny-all for every sandbox on the machine, plus ``hosts`` for ``name``."""
        raise AirlockError(
            f"the {self.name} engine has no machine-wide network policy: each sandbox has its own",
            hint="run `git airlock lockdown` without --global",
        )

    def global_unlock_plan(self, mode: str) -> Plan:
        """Every sandbox on the machine back to ``mode``."""
        raise AirlockError(
            f"the {self.name} engine has no machine-wide network policy: each sandbox has its own",
            hint="run `git airlock unlock` without --global",
        )


class Engine(Protocol):
    name: str
    install_hint: str
    network_change_takes_effect: str

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

    def lockdown_plan(self, runner: Runner, name: str, hosts: list[str]) -> Plan:
        """Only ``hosts`` for the sandbox ``name``; no other sandbox changes."""

    def unlock_plan(self, runner: Runner, name: str | None, mode: str) -> Plan:
        """The sandbox ``name`` back to ``mode`` (the configured default); no other sandbox changes."""

    def global_lockdown_plan(self, name: str, hosts: list[str]) -> Plan: ...

    def global_unlock_plan(self, mode: str) -> Plan: ...

    def net_plan(self, name: str | None) -> Plan: ...

    def push_risks(self, runner: Runner, name: str | None) -> list[str]: ...

    def run_problems(self, name: str, since: float) -> list[str]: ...

    def auth_note(self, agent: Agent, urls: Mapping[str, str]) -> str: ...

    def install_agent_plan(self, agent: Agent, update: bool) -> Plan: ...

    def agent_version(self, agent: Agent) -> str | None: ...

    def agent_where(self, agent: Agent) -> str: ...

    def secret_set_plan(self, service: str, read_value: Callable[[], str | None]) -> Plan | None: ...

    def secret_ls_plan(self) -> Plan | None: ...

    def secret_rm_plan(self, service: str) -> Plan | None: ...
