"""The bubblewrap engine: its operations as Plans, built from the package's pieces."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from git_airlock.agents import Agent, get_agent
from git_airlock.engines.base import Engine, SandboxSpec, SandboxState, SeedFile
from git_airlock.engines.bwrap import clone, confine, gate, overlay
from git_airlock.engines.bwrap.agents import Store
from git_airlock.engines.bwrap.argv import agent_argv, sandbox_environment, sandbox_path, write_source_config
from git_airlock.engines.bwrap.home import copy_into, merge_json
from git_airlock.engines.bwrap.layout import (
    SANDBOX_HOME,
    Paths,
    SandboxMeta,
    check_owner,
    checkout_cache,
    data_root,
    make_dirs,
    marker,
    new_identity,
    remove_tree,
    same_repository,
)
from git_airlock.engines.bwrap.processes import kill, running_pids
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.naming import fetch_refspecs, remote_name
from git_airlock.plan import Plan, Runner, Step

if TYPE_CHECKING:
    from git_airlock.checks import Report

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`), then run `git airlock doctor`"
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|AUTH|PRIVATE|COOKIE|SESSION|DATABASE_URL|DSN$"
    r"|(^|_)KEY(_ID)?$|(^|_)PAT$",
    re.IGNORECASE,
)
_URL_WITH_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")
_ISOLATED_GIT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


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
        return SandboxState(name, "running" if pids else "stopped", meta.get("agent", ""), detail)

    # -- creating -----------------------------------------------------------

    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        paths = Paths(spec.name)
        _check_pass_env(spec.pass_env)
        plan = Plan()
        if exists:
            meta = self._meta(spec.name)
            if not same_repository(meta, spec.common_dir):
                raise AirlockError(
                    f"sandbox {spec.name!r} was made for {meta.get('repo')}, which no longer exists",
                    hint=f"remove it with `git airlock --name {spec.name} rm`, then start a new one",
                )
        else:
            meta = self._create(plan, spec, paths)
        for key, value in clone.remote_settings(remote_name(spec.name), paths, spec.repo_root).items():
            plan.add(["git", "-C", spec.repo_root, "config", key, value])

        def prepare() -> None:
            paths.remember(tmp_size=spec.tmp_size)
            confine.prepare(paths)
            write_source_config(paths, spec.repo_root)

        plan.call("prepare the sandbox's user, seccomp filter, devices and view of your config", prepare)
        for seed in seeds:
            relative = os.path.relpath(seed.target, SANDBOX_HOME)
            plan.call(
                f"copy {seed.source} to {seed.target} (never through a link)",
                functools.partial(copy_into, paths.home, relative, seed.source),
            )
        self._plan_gate(
            plan, spec.name, spec.agent, spec.network, dict(spec.resolve), dict(spec.service_urls), spec.extra_hosts
        )
        agent = get_agent(spec.agent)
        env = sandbox_environment(meta, spec, agent)
        if agent.home_files:
            answers = agent.home_files(env, clone.workspace(spec.repo_root))
            for relative, values in answers.items():
                plan.call(
                    f"answer {agent.name}'s first-start questions in ~/{relative} (never through a link)",
                    functools.partial(merge_json, paths.home, relative, values),
                )
        command = [agent.executable, *agent.leading_args(env), *agent_args]
        if not spec.dry_run and not _on_sandbox_path(command[0], paths.home):
            package = agent.npm_package
            shell = f"git airlock --engine bwrap --name {spec.name} --agent shell up"
            install = (
                f"`git airlock agents install {spec.agent}` installs it once for every sandbox"
                if package
                else f"install it inside, as the agent: `{shell}`, then into ~/.local/bin there, as its docs say"
            )
            raise AirlockError(
                f"`{command[0]}` is not installed where the sandbox can run it",
                hint=f"the sandbox sees /usr, its own HOME and the agents git-airlock installed, not yours; {install}",
            )
        argv = agent_argv(spec.name, meta, env, command, spec)
        return plan, Step(tuple(argv), interactive=True, check=False)

    def _plan_gate(
        self,
        plan: Plan,
        name: str,
        agent: str,
        network: str,
        resolve: dict[str, str],
        urls: dict[str, str],
        extra: tuple[str, ...] | None = None,
    ) -> None:
        """Write the egress gate's configuration, when the sandbox's network goes through it."""
        paths = Paths(name)
        meta = paths.read_meta()
        if (meta.get("network") or network) in ("allow-all", "deny-all"):
            return
        if not os.access("/usr/bin/python3", os.X_OK):
            raise AirlockError(
                "the network allowlist needs python3 in /usr (it hands the sandbox's proxy socket to the egress gate)",
                hint="install python3, or choose GLOBAL_NETWORK_POLICY=deny-all or allow-all",
            )
        resolve = resolve or meta.get("resolve") or {}
        urls = urls or meta.get("service_urls") or {}

        def write() -> None:
            if extra is not None:
                paths.remember(extra_hosts=list(extra))
            services = gate.services(urls)
            current = paths.read_meta()
            gate.Gate(name, marker(name, current)).write(
                name, gate.allowlist(current, agent, services), resolve, services
            )
            paths.remember(resolve=resolve, service_urls=urls)

        plan.call(f"write the egress policy for {name} (beside its gate socket, out of the sandbox's reach)", write)

    def _create(self, plan: Plan, spec: SandboxSpec, paths: Paths) -> SandboxMeta:
        """Plan the sandbox's creation; returns the record it will have."""
        remote = remote_name(spec.name)
        if os.path.lexists(paths.root):
            raise AirlockError(
                f"a half-made sandbox is in the way: {paths.root} (left by an `up` that was killed)",
                hint=f"remove that folder (`rm -rf {shlex.quote(paths.root)}`), then run `up` again",
            )
        plan.call(f"create {paths.root} (home, etc)", lambda: make_dirs(paths))
        plan.add(
            ["git", "clone", "--quiet", "--shared", "--no-checkout", "--template=", spec.repo_root, paths.clone],
            env=_ISOLATED_GIT,
        )
        for key, value in (
            ("user.name", f"git-airlock sandbox {spec.name}"),
            ("user.email", f"{spec.name}@sandbox.git-airlock.invalid"),
            ("remote.origin.url", clone.SOURCE),
        ):
            plan.add(["git", "-C", paths.clone, "config", key, value], env=_ISOLATED_GIT)
        layout: Literal["plain", "overlay"] = "plain"
        lower = ""
        commit = _git_out(spec.repo_root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
        probe_root = os.path.join(os.path.dirname(data_root()), "probe")
        if commit and (overlay.tools() if spec.dry_run else overlay.usable(probe_root)):
            cache = checkout_cache(_git_out(spec.repo_root, "rev-parse", f"{commit}^{{tree}}"))
            layout, lower = "overlay", os.path.join(cache, "tree")
            if not os.path.isfile(os.path.join(cache, "index")):
                plan.call(
                    f"check out {commit[:10]} once into the shared checkout {cache}",
                    lambda: overlay.build_cache(spec.common_dir, commit, cache),
                )
            plan.call(
                "give the clone the shared checkout's index; its own changes go to an overlay layer",
                lambda: overlay.start(paths, cache),
            )
        elif commit:
            plan.add(
                ["git", "-C", paths.clone, "-c", "checkout.workers=0", "checkout", "--quiet", "--force"],
                env=_ISOLATED_GIT,
            )
        else:  # a repository with no commits yet: the agent starts on the same unborn branch
            branch = _git_out(spec.repo_root, "symbolic-ref", "-q", "HEAD") or "refs/heads/main"
            plan.add(["git", "-C", paths.clone, "symbolic-ref", "HEAD", branch], env=_ISOLATED_GIT)
        plan.add(["git", "-C", spec.repo_root, "config", f"remote.{remote}.url", paths.clone])
        tracking, recovery = fetch_refspecs(spec.name)
        plan.add(["git", "-C", spec.repo_root, "config", "--replace-all", f"remote.{remote}.fetch", tracking])
        plan.add(["git", "-C", spec.repo_root, "config", "--add", f"remote.{remote}.fetch", recovery])
        meta: SandboxMeta = {
            "name": spec.name,
            "id": new_identity(),
            "agent": spec.agent,
            "repo": spec.repo_root,
            "common_dir": spec.common_dir,
            "network": None,
            "layout": layout,
            "lower": lower,
        }
        plan.call(
            f"record {paths.meta} (the sandbox's id, and that it belongs to this repository)",
            lambda: paths.write_meta(meta),
        )
        return meta

    # -- lifecycle ----------------------------------------------------------

    def fetch_plan(self, name: str, running: bool) -> Plan:
        paths = Paths(name)
        return Plan().call(
            "prepare the sandbox in which git upload-pack reads the clone", lambda: confine.prepare(paths)
        )

    def upload_pack(self, name: str) -> str | None:
        """What serves the clone to a host-side fetch: ``git upload-pack`` in a sandbox of its own."""
        return clone.upload_pack_command(Paths(name), self._meta(name).get("repo", ""))

    def _refuse_second_mount(self, name: str, meta: SandboxMeta, what: str, hint: str) -> None:
        """An overlay layer can be mounted writable once: not while the sandbox runs on it."""
        if meta.get("layout") == "overlay" and running_pids(marker(name, meta)):
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
            confine.prepare(paths)
            write_source_config(paths, meta.get("repo", ""))

        plan = Plan().call("prepare the sandbox's user, seccomp filter, devices and view of your config", prepare)
        self._plan_gate(plan, name, meta.get("agent", ""), meta.get("network") or "deny-all", {}, {})
        env = sandbox_environment(meta, None, get_agent(meta.get("agent") or "shell"))
        argv = agent_argv(name, meta, env, ["bash"])
        return plan.extend(Plan([Step(tuple(argv), interactive=True, check=False)]))

    def stop_plan(self, name: str) -> Plan:
        tag = marker(name, self._meta(name))
        return Plan().call(f"stop the bwrap processes of sandbox {name}", lambda: kill(name, tag))

    def remove_plan(self, name: str, repo_root: str) -> Plan:
        paths = Paths(name)
        remote = remote_name(name)
        plan = self.stop_plan(name)
        plan.call(f"remove {paths.root}", lambda: remove_tree(paths.root))
        egress = gate.Gate(name, marker(name, self._meta(name)))
        plan.call(f"remove the gate's folder {egress.dir}", lambda: remove_tree(egress.dir))
        plan.call(f"remove the gate's log {egress.log}", lambda: _remove_files(egress.log, egress.log + ".1"))
        plan.add(["git", "-C", repo_root, "config", "--remove-section", f"remote.{remote}"], check=False)
        plan.call(
            f"delete refs/remotes/{remote}/* (refs/sandboxes/{name}/* stay for recovery)",
            lambda: _delete_refs(repo_root, f"refs/remotes/{remote}/"),
        )
        return plan

    # -- network ------------------------------------------------------------

    def policy_init_plan(self, mode: str) -> Plan:
        return Plan()

    def lockdown_plan(self, runner: Runner, name: str, hosts: list[str]) -> Plan:
        return Plan().call(
            f"set sandbox {name}'s network to its allowlist ({len(hosts)} rule(s)) from its next start",
            lambda: self._set_network(name, "lockdown", hosts),
        )

    def unlock_plan(self, runner: Runner, name: str | None, mode: str) -> Plan:
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
        plan = Plan().call("prepare the sandbox in which git commits", lambda: confine.prepare(paths))
        return plan.extend(Plan(list(clone.commit_steps(paths, message))))


def _check_pass_env(names: tuple[str, ...]) -> None:
    """Refuse variables that look like credentials: their values would be in bwrap's command line,
    which every process in the sandbox can read (``/proc/1/cmdline``)."""
    bad = [name for name in names if _SECRET_NAME.search(name)]
    bad += [name for name in names if name not in bad and _URL_WITH_USERINFO.match(os.environ.get(name, ""))]
    if bad:
        raise AirlockError(
            f"AIRLOCK_PASS_ENV names {', '.join(bad)}, which look like credentials (or a URL that carries one)",
            hint="credentials stay on the host; pass only non-secret variables to the sandbox",
        )


def _on_sandbox_path(command: str, home: str) -> bool:
    """Whether ``command`` exists on the sandbox's PATH, looked up through the host paths behind it."""
    for folder in sandbox_path().split(":"):
        host = home + folder[len(SANDBOX_HOME) :] if folder.startswith(SANDBOX_HOME) else folder
        if os.access(os.path.join(host, command), os.X_OK):
            return True
    return False


def _git_out(repo: str, *args: str) -> str:
    return Git(repo, safe=False).run(*args, check=False).strip()


def _remove_files(*paths: str) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _delete_refs(repo_root: str, prefix: str) -> None:
    git = Git(repo_root, safe=False)
    refs = git.refs(prefix)
    if refs:
        git.run("update-ref", "--stdin", input="".join(f"delete {ref}\n" for ref in refs))
