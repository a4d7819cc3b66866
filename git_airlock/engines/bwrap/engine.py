"""The bubblewrap engine: its operations as Plans, built from the package's pieces."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from git_airlock.agents import Agent, recorded_agent
from git_airlock.engines.base import Engine, SandboxSpec, SandboxState, SeedFile
from git_airlock.engines.bwrap import clone, confine, gate, userns
from git_airlock.engines.bwrap.agents import Store
from git_airlock.engines.bwrap.argv import agent_argv, kept_state, sandbox_environment, write_source_config
from git_airlock.engines.bwrap.home import Owner, copy_into, merge_json
from git_airlock.engines.bwrap.layout import (
    SANDBOX_HOME,
    Paths,
    SandboxMeta,
    check_owner,
    marker,
    remove_tree,
    same_repository,
)
from git_airlock.engines.bwrap.processes import kill, running_pids
from git_airlock.engines.bwrap.start import (
    check_installed,
    check_pass_env,
    plan_create,
    plan_restart,
    prepare_host_side,
    prepare_start,
)
from git_airlock.engines.bwrap.system import Layer
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.naming import remote_name
from git_airlock.plan import Plan, Runner, Step
from git_airlock.terminal import human_bytes

if TYPE_CHECKING:
    from git_airlock.checks import Report
    from git_airlock.modes import NetworkPolicy

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`), then run `git airlock doctor`"


class BwrapEngine(Engine):
    name = "bwrap"
    install_hint = INSTALL_HINT
    network_change_takes_effect = "from its next start"

    def __init__(self, common_dir: str | None = None) -> None:
        self.common_dir = common_dir
        """The repository this invocation works on: a sandbox name belongs to one repository."""

    def executable(self) -> str | None:
        return shutil.which(confine.BWRAP)

    def sandbox_home(self) -> str:
        return SANDBOX_HOME

    # -- state --------------------------------------------------------------

    def _meta(self, name: str) -> SandboxMeta:
        """The sandbox's record, once it is known to be this repository's (or its owner is gone)."""
        meta = Paths(name).read_meta()
        check_owner(name, meta, self.common_dir)
        return meta

    def state(self, runner: Runner, name: str) -> SandboxState | None:
        paths = Paths(name)
        if runner.dry_run:
            runner.show(f"look for {paths.root} and running bwrap processes of sandbox {name}")
            return None
        if not paths.exists():
            return None
        meta = self._meta(name)
        pids = running_pids(marker(name, meta))
        network = meta.get("network") or "the configured policy"
        detail = (
            f"clone {paths.clone} ({meta.get('layout', 'plain')} working tree; the agent's: look with "
            f"`git airlock shell`, never with git there); network: {network}"
        ) + (f"; bwrap pid {', '.join(map(str, pids))}" if pids else "")
        layer, size = Layer(paths.root), None
        if meta.get("system", "none") != "none" and layer.exists():
            size = layer.size()
            detail += f"; system layer {human_bytes(size)} ({meta.get('system')})"
        notes = self.start_notes(name)
        detail += "".join(f"; {note}" for note in notes)
        return SandboxState(name, "running" if pids else "stopped", meta.get("agent", ""), detail, size)

    keeps_agent_state = True

    def agent_state_changes(self, name: str) -> list[str] | None:
        state = kept_state(self._meta(name))
        return state.changes(Paths(name)) if state else None

    def start_notes(self, name: str) -> list[str]:
        """What ``up`` and ``status`` say about the sandbox before it starts: a layer over an older system."""
        paths = Paths(name)
        layer = Layer(paths.root)
        if paths.read_meta().get("system", "none") == "none" or not layer.older_than_host():
            return []
        own = (
            "; apt inside still sees the packages as they were then (its own package database)"
            if layer.holds_packages()
            else ""
        )
        return [
            f"sandbox {name}'s system layer was made over an older system: the host's packages changed since"
            f"{own}; `git airlock rm` and `up` give it a layer over today's"
        ]

    # -- creating -----------------------------------------------------------

    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        paths = Paths(spec.name)
        check_pass_env(spec.pass_env)
        plan = Plan()
        if exists:
            meta = self._meta(spec.name)
            if not same_repository(meta, spec.common_dir):
                raise AirlockError(
                    f"sandbox {spec.name!r} was made for {meta.get('repo')}, which no longer exists",
                    hint=f"remove it with `git airlock --name {spec.name} rm`, then start a new one",
                )
            meta = plan_restart(plan, spec, paths, meta)
        else:
            meta = plan_create(plan, spec, paths)
        ids = userns.of_sandbox(meta)
        state = kept_state(meta)

        def place(relative: str) -> tuple[str, Owner, bool]:
            """Where the host writes a file for HOME, and whether that is the agent's kept state (which
            holds its own folders)."""
            if state and state.holds(relative):
                return state.root, state.ids(spec.dry_run).chown, True
            return paths.home, ids.chown, False

        for key, value in clone.remote_settings(remote_name(spec.name), paths, spec.repo_root, ids).items():
            plan.add(["git", "-C", spec.repo_root, "config", key, value])

        def prepare() -> None:
            paths.remember(tmp_size=spec.tmp_size)
            prepare_start(paths, paths.read_meta())
            write_source_config(paths, spec.repo_root)

        plan.call("prepare the sandbox's seccomp filter, its system layer and its view of your config", prepare)
        for seed in seeds:
            relative = os.path.relpath(seed.target, SANDBOX_HOME)
            base, owner, kept = place(relative)
            plan.call(
                f"copy {seed.source} to {seed.target} (never through a link)",
                functools.partial(copy_into, base, relative, seed.source, owner, kept),
            )
        agent = spec.agent
        gate.plan_config(
            plan, spec.name, agent.hosts, spec.network, dict(spec.resolve), dict(spec.service_urls), spec.extra_hosts
        )
        env = sandbox_environment(meta, spec, agent)
        if agent.home_files:
            answers = agent.home_files(env, clone.workspace(spec.repo_root))
            for relative, values in answers.items():
                base, owner, kept = place(relative)
                plan.call(
                    f"answer {agent.name}'s first-start questions in ~/{relative} (never through a link)",
                    functools.partial(merge_json, base, relative, values, owner, kept),
                )
        check_installed(spec, paths)
        command = [agent.executable, *agent.leading_args(env), *agent_args]
        argv = agent_argv(spec.name, meta, env, command, spec)
        return plan, Step(tuple(argv), interactive=True, own_terminal=True, check=False)

    # -- lifecycle ----------------------------------------------------------

    def fetch_plan(self, name: str, running: bool) -> Plan:
        paths = Paths(name)
        return Plan().call(
            "prepare the sandbox in which git upload-pack reads the clone", lambda: prepare_host_side(paths)
        )

    def upload_pack(self, name: str) -> str | None:
        """What serves the clone to a host-side fetch: ``git upload-pack`` in a sandbox of its own."""
        meta = self._meta(name)
        return clone.upload_pack_command(Paths(name), meta.get("repo", ""), userns.of_sandbox(meta))

    def _refuse_second_mount(self, name: str, meta: SandboxMeta, what: str, hint: str) -> None:
        """An overlay layer (its working tree's, its system's) can be mounted writable once: not while it runs."""
        layered = meta.get("layout") == "overlay" or meta.get("system", "none") != "none"
        if layered and running_pids(marker(name, meta)):
            raise AirlockError(f"sandbox {name} is running; {what}", hint=hint)

    def shell_plan(self, name: str) -> Plan:
        paths = Paths(name)
        meta = self._meta(name)
        self._refuse_second_mount(
            name,
            meta,
            "its copy-on-write working tree can be mounted only once",
            "open a shell from the agent's terminal (`git airlock attach`), or stop it first",
        )

        def prepare() -> None:
            prepare_start(paths, meta)
            write_source_config(paths, meta.get("repo", ""))

        plan = Plan().call("prepare the sandbox's seccomp filter, system layer and view of your config", prepare)
        agent = recorded_agent(meta.get("agent", ""))
        gate.plan_config(plan, name, agent.hosts, meta.get("network") or "deny-all", {}, {})
        env = sandbox_environment(meta, None, agent)
        argv = agent_argv(name, meta, env, ["bash"])
        return plan.extend(Plan([Step(tuple(argv), interactive=True, own_terminal=True, check=False)]))

    def stop_plan(self, name: str) -> Plan:
        tag = marker(name, self._meta(name))
        return Plan().call(f"stop the bwrap processes of sandbox {name}", lambda: kill(name, tag))

    def remove_plan(self, name: str, repo_root: str) -> Plan:
        paths = Paths(name)
        remote = remote_name(name)
        plan = self.stop_plan(name)
        meta = self._meta(name)

        def remove() -> None:
            userns.remove(paths.root, userns.from_meta(meta))
            userns.release(meta)

        plan.call(f"remove {paths.root} (its clone, HOME and layers) and give its uids back", remove)
        egress = gate.Gate(name, marker(name, meta))
        plan.call(f"remove the gate's folder {egress.dir}", lambda: remove_tree(egress.dir))
        plan.call(f"remove the gate's log {egress.log}", lambda: _remove_files(egress.log, egress.log + ".1"))
        plan.add(["git", "-C", repo_root, "config", "--remove-section", f"remote.{remote}"], check=False)
        plan.call(
            f"delete refs/remotes/{remote}/* (refs/sandboxes/{name}/* stay for recovery)",
            lambda: _delete_refs(repo_root, f"refs/remotes/{remote}/"),
        )
        return plan

    # -- network ------------------------------------------------------------

    def policy_init_plan(self, mode: NetworkPolicy) -> Plan:
        return Plan()

    def lockdown_plan(self, runner: Runner, name: str, hosts: list[str]) -> Plan:
        return Plan().call(
            f"set sandbox {name}'s network to its allowlist ({len(hosts)} rule(s)) from its next start",
            lambda: self._set_network(name, "lockdown", hosts),
        )

    def unlock_plan(self, runner: Runner, name: str | None, mode: NetworkPolicy) -> Plan:
        if name is None:
            raise AirlockError("the bwrap engine's network is set per sandbox", hint="run `unlock` in the repository")
        return Plan().call(
            f"set sandbox {name}'s network back to {mode} from its next start", lambda: self._set_network(name, None)
        )

    def _set_network(self, name: str, mode: str | None, allow: list[str] | None = None) -> None:
        paths = Paths(name)
        if not paths.exists():
            raise AirlockError(f"no sandbox named {name!r}", hint="start one with `git airlock --engine bwrap up`")
        self._meta(name)
        paths.remember(network=mode, allow=allow)

    def net_logs(self, name: str | None) -> list[str]:
        """The egress gate's connection logs (JSON lines): one sandbox's, or every sandbox's."""
        folder = gate.Gate.log_dir()
        if name:
            log = os.path.join(folder, f"{name}.jsonl")
            return [log + ".1", log]  # the older file first (the log is rotated when it grows large)
        return sorted(os.path.join(folder, f) for f in os.listdir(folder)) if os.path.isdir(folder) else []

    # -- agents -------------------------------------------------------------

    def doctor(self, report: Report, runner: Runner, sandbox: str | None) -> None:
        from git_airlock.engines.bwrap.doctor import check_bwrap, check_credential_store

        check_bwrap(report)
        check_credential_store(report)

    def run_problems(self, name: str, since: float) -> list[str]:
        network = Paths(name).read_meta().get("network") or "balanced"
        return gate.problems(self.net_logs(name), since, network)

    def auth_note(self, agent: Agent, urls: Mapping[str, str]) -> str:
        held = [service for service, info in gate.services(dict(urls)).items() if info["key_env"] in agent.credentials]
        if held:
            return f"{agent.name} uses the credential the host holds ({', '.join(held)}); it never enters the sandbox"
        return (
            f"log in inside {agent.name} once (the sandbox keeps its own HOME across stop and up), "
            "or keep a key on the host: `git airlock secret set`"
        )

    def install_agent_plan(self, agent: Agent, update: bool) -> Plan:
        if not agent.npm_package:
            raise AirlockError(
                f"{agent.name} is not installed from npm, so not by git-airlock",
                hint=f"install it inside a sandbox, as the agent: `git airlock --engine bwrap --agent shell up`, "
                f"then into ~/.local/bin there, as {agent.name}'s documentation says",
            )
        return Store().install_plan(agent.npm_package, update)

    def agent_version(self, agent: Agent) -> str | None:
        return Store().version(agent.npm_package) if agent.npm_package else None

    def agent_where(self, agent: Agent) -> str:
        version = self.agent_version(agent)
        if version:
            return f"{version}, for every sandbox ({Store().bin})"
        system = shutil.which(agent.executable, path="/usr/local/bin:/usr/bin:/bin")
        if system:
            return f"system-wide: {system}"
        if agent.npm_package:
            return f"not installed: `git airlock agents install {agent.name}`"
        return "not installed: install it inside a sandbox, as its documentation says"

    # -- the clone from the host side ---------------------------------------

    def clone_script_plan(self, name: str, script: str, args: list[str]) -> Plan:
        paths = Paths(name)
        self._meta(name)
        plan = Plan().call("prepare the sandbox in which git reads the clone", lambda: prepare_host_side(paths))
        return plan.extend(Plan([Step(tuple(clone.script_argv(paths, script, args)))]))

    def uncommitted(self, name: str) -> list[str]:
        """Changed paths in the clone's working tree (the agent's work not committed yet)."""
        paths = Paths(name)
        if not paths.exists():
            return []
        self._meta(name)
        return clone.uncommitted(paths)

    def commit_plan(self, name: str, message: str) -> Plan:
        paths = Paths(name)
        self._refuse_second_mount(
            name,
            self._meta(name),
            "its working tree can only be changed from inside while it runs",
            "commit from the agent's terminal (`git airlock attach`), or `git airlock stop` first",
        )
        plan = Plan().call("prepare the sandbox in which git commits", lambda: prepare_host_side(paths))
        return plan.extend(Plan(list(clone.commit_steps(paths, message))))


def _remove_files(*paths: str) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _delete_refs(repo_root: str, prefix: str) -> None:
    git = Git(repo_root, safe=False)
    refs = git.refs(prefix)
    if refs:
        git.run("update-ref", "--stdin", input="".join(f"delete {ref}\n" for ref in refs))
