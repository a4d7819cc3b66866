"""The contract every sandbox engine fulfils.

Engines never print: they return :class:`~git_airlock.plan.Plan` objects
(argument lists, plus in-process calls with a description) that a Runner
executes or, under ``--dry-run``, prints. So what a dry run shows is what a
real run does, for every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from git_airlock.errors import AirlockError
from git_airlock.plan import Plan, Runner, Step

if TYPE_CHECKING:
    from git_airlock.agents import Agent
    from git_airlock.checks import Report
    from git_airlock.modes import NetworkPolicy


DID_NOT_START = 125
"""The exit status of an agent's step whose sandbox could not be started (it said why): the agent never ran.
``docker run`` answers the same when its container cannot start."""


@dataclass(frozen=True)
class SandboxState:
    name: str
    status: str
    """'running' or 'stopped' (engines map their own words onto these)."""
    agent: str = ""
    detail: str = ""
    """Engine-specific facts for `status` (processes, clone path)."""
    layer_bytes: int | None = None
    """Bytes the sandbox's own system layer takes on the host's disk (None: the engine keeps none there)."""

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
    agent: Agent
    """The agent to run; engines take everything they need of it from here (its name: ``agent.name``)."""
    repo_root: str
    """The main worktree of the host repository."""
    common_dir: str = ""
    network: NetworkPolicy = "balanced"
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
    keep_agent_state: bool = False
    """The agent's own config folders come from the user's store, kept across sandboxes (``airlock.keepAgentState``)."""


class Engine(ABC):
    """What every sandbox engine does (the abstract methods), and what an engine does when it has
    nothing of its own to say (the rest): commands call these and never ask which engine they hold.
    Engine-specific words live in the engine."""

    name: ClassVar[str]
    install_hint: ClassVar[str]
    network_change_takes_effect = "from now on"
    """When a lockdown or unlock reaches a running sandbox (for the message after it)."""

    # -- required -------------------------------------------------------------

    @abstractmethod
    def executable(self) -> str | None:
        """Path of the engine's main program, or None when it is not installed."""

    @abstractmethod
    def sandbox_home(self) -> str:
        """HOME inside the sandbox (where --seed-config puts files)."""

    @abstractmethod
    def state(self, runner: Runner, name: str) -> SandboxState | None:
        """The sandbox's state; None when absent (and in a dry run, after showing the query)."""

    @abstractmethod
    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        """What creates (or, when ``exists``, restarts) the sandbox, and the step that runs the agent in it."""

    @abstractmethod
    def fetch_plan(self, name: str, running: bool) -> Plan:
        """What must happen before the host fetches from the sandbox's clone (may be nothing)."""

    @abstractmethod
    def upload_pack(self, name: str) -> str | None:
        """The command a host-side fetch starts to read the sandbox's clone (``git fetch --upload-pack``),
        or None when the remote serves itself (sbx's git daemon)."""

    @abstractmethod
    def shell_plan(self, name: str) -> Plan: ...

    @abstractmethod
    def stop_plan(self, name: str) -> Plan: ...

    @abstractmethod
    def remove_plan(self, name: str, repo_root: str) -> Plan: ...

    @abstractmethod
    def policy_init_plan(self, mode: NetworkPolicy) -> Plan: ...

    @abstractmethod
    def lockdown_plan(self, runner: Runner, name: str, hosts: list[str]) -> Plan:
        """Only ``hosts`` for the sandbox ``name``; no other sandbox changes."""

    @abstractmethod
    def unlock_plan(self, runner: Runner, name: str | None, mode: NetworkPolicy) -> Plan:
        """The sandbox ``name`` back to ``mode`` (the configured default); no other sandbox changes."""

    # -- optional, with what an engine without it does -------------------------

    def start_notes(self, name: str) -> list[str]:
        """What ``up`` says about the sandbox before it starts it (``status`` shows them too)."""
        return []

    def fetch_note(self, running: bool) -> str | None:
        """What to tell the user before a fetch (e.g. that a stopped sandbox is started for it)."""
        return None

    def states(self, runner: Runner, names: list[str]) -> dict[str, SandboxState]:
        """The state of each of ``names`` that exists (``ls``); an engine that lists every sandbox in one
        call answers with that one call."""
        found = {}
        for name in names:
            state = self.state(runner, name)
            if state is not None:
                found[name] = state
        return found

    @abstractmethod
    def clone_script_plan(self, name: str, script: str, args: list[str]) -> Plan:
        """A plan whose last command runs ``sh -c script`` (``args`` as ``$1 ...``) over the sandbox's clone, as the
        sandbox's user, in its working tree (read-only where the engine can make it so) with git finding
        the clone: what saves the agent's uncommitted work. Nothing of it runs with the user's authority."""

    def uncommitted(self, name: str) -> list[str]:
        """Paths the agent changed and did not commit, where the engine can look from the host; none otherwise."""
        return []

    def commit_plan(self, name: str, message: str) -> Plan:
        """What commits the agent's uncommitted work from the host side."""
        raise AirlockError(
            f"`commit` needs the sandbox's clone on this machine; the {self.name} engine keeps it in its VM",
            hint="open `git airlock shell` and commit inside the sandbox",
        )

    def net_plan(self, name: str | None) -> Plan:
        """What shows the engine's own log of the sandbox's connections (``net_logs`` is the other way)."""
        return Plan()

    def net_logs(self, name: str | None) -> list[str] | None:
        """The gate's connection logs (JSON lines) for git-airlock to summarise; None when the engine
        shows its own log (``net_plan``)."""
        return None

    def connection_entries(self, runner: Runner, name: str | None) -> list[dict[str, object]]:
        """The connection attempts of sandbox ``name`` (None: every sandbox) as :mod:`git_airlock.netlog`
        reads them, from the gate's logs (``net_logs``); none where the engine keeps no log of its own."""
        from git_airlock import netlog

        paths = self.net_logs(name)
        if paths is None:
            return []
        if runner.dry_run:
            runner.show(f"read {', '.join(paths) or 'no log yet'}")
            return []
        return netlog.parse(netlog.read_lines(paths))

    def doctor(self, report: Report, runner: Runner, sandbox: str | None) -> None:
        """The engine's own `doctor` lines (``sandbox``: this repository's, when there is one)."""
        return None

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

    keeps_agent_state: ClassVar[bool] = False
    """Whether the engine can give new sandboxes the agent's state kept for the user (``airlock.keepAgentState``)."""

    def agent_state_changes(self, name: str) -> list[str] | None:
        """What changed in the agent's kept state since sandbox ``name`` was made (``report``); None when the
        sandbox does not use kept state."""
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

    def global_unlock_plan(self, mode: NetworkPolicy) -> Plan:
        """Every sandbox on the machine back to ``mode``."""
        raise AirlockError(
            f"the {self.name} engine has no machine-wide network policy: each sandbox has its own",
            hint="run `git airlock unlock` without --global",
        )
