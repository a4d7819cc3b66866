"""bubblewrap engine: Linux namespaces, no VM, no daemon.

Layout per sandbox, under the user data directory (never in the repository):

    sandboxes/<name>/clone/    private clone (alternates to the host's objects), read-write
    sandboxes/<name>/home/     persistent HOME (agent logins and settings survive stop/up)
    sandboxes/<name>/etc/      passwd/group for the sandbox user
    sandboxes/<name>/meta.json what the sandbox was made from, its network, a hash of its git config

Inside: system directories read-only, the host repository read-only (at its
own path, which the clone's alternates name, and at /run/sandbox/source), the
clone read-write at /workspace/<repo> with its ``.git/config`` read-only (so
the agent cannot plant configuration that a host-side git would obey), HOME
at /home/agent, an empty environment plus a few variables, and new user,
PID, IPC, UTS and (unless allow-all) network namespaces. bwrap dies with its
parent; stopping a sandbox kills bwrap, whose PID namespace takes every
process of the sandbox with it.

The host's ``sandbox-<name>`` remote points at the clone, so fetch, diff,
review, merge, log and the hook work exactly as with sbx.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

from git_airlock.engines.base import SandboxSpec, SandboxState, SeedFile
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.jsonfile import write_json
from git_airlock.naming import fetch_refspecs, remote_name
from git_airlock.plan import Plan, Runner, Step

BWRAP = "bwrap"
SANDBOX_HOME = "/home/agent"
SOURCE = "/run/sandbox/source"
MARKER = "GIT_AIRLOCK_SANDBOX"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`), then run `git airlock doctor`"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "bash.bashrc",
    "profile",
    "profile.d",
    "inputrc",
    "terminfo",
    "mime.types",
    "protocols",
    "services",
)
AGENT_COMMANDS = {"shell": "bash", "cursor": "cursor-agent", "kiro": "kiro-cli"}
SANDBOX_PATH = ":".join(
    (
        f"{SANDBOX_HOME}/.local/bin",
        f"{SANDBOX_HOME}/.npm-global/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    )
)
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|AUTH|PRIVATE)", re.IGNORECASE)
_ISOLATED_GIT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def data_root() -> str:
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("git-airlock"), "sandboxes")


class Paths:
    """Where one sandbox's pieces live on the host."""

    def __init__(self, name: str) -> None:
        self.root = os.path.join(data_root(), name)
        self.clone = os.path.join(self.root, "clone")
        self.git_dir = os.path.join(self.clone, ".git")
        self.home = os.path.join(self.root, "home")
        self.etc = os.path.join(self.root, "etc")
        self.meta = os.path.join(self.root, "meta.json")
        self.upper = os.path.join(self.root, "upper")
        self.work = os.path.join(self.root, "work")
        self.merged = os.path.join(self.root, "merged")

    def exists(self) -> bool:
        return os.path.isfile(self.meta) and os.path.isdir(self.git_dir)

    def read_meta(self) -> dict:
        try:
            with open(self.meta, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def write_meta(self, meta: dict) -> None:
        write_json(self.meta, meta, indent=2)


PROXY_PORT = 3128
HANDOFF_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "egress", "handoff.py")


class Gate:
    """Where a sandbox's egress proxy lives: its socket (short path: Unix sockets allow ~100 bytes),
    the proxy's configuration, and the connection log.

    Only ``socket_dir`` is seen by the sandbox, and read-only (connecting to a socket needs no
    write access to its mount): the configuration beside it stays out of the sandbox's reach,
    so it can neither rewrite the policy nor plant a symlink for the host to write through."""

    def __init__(self, name: str) -> None:
        key = hashlib.sha256(name.encode()).hexdigest()[:12]
        self.root = os.path.join(tempfile.gettempdir(), f"git-airlock-{os.getuid()}")
        self.dir = os.path.join(self.root, key)
        self.socket_dir = os.path.join(self.dir, "socket")
        self.socket = os.path.join(self.socket_dir, "egress.sock")
        self.config = os.path.join(self.dir, "egress.json")
        self.log = os.path.join(self.log_dir(), f"{name}.jsonl")

    @staticmethod
    def log_dir() -> str:
        from platformdirs import user_state_dir

        return os.path.join(user_state_dir("git-airlock"), "net")

    def write(self, name: str, allow: list[str], resolve: dict[str, str], services: dict[str, dict]) -> None:
        """The proxy's configuration: rules and service endpoints, never a credential (the proxy reads those)."""
        for path in (self.root, self.dir, self.socket_dir):
            _private_dir(path)
        config = {
            "sandbox": name,
            "socket": self.socket,
            "log": self.log,
            "allow": allow,
            "resolve": resolve,
            "services": services,
        }
        write_json(self.config, config, indent=2)


def _private_dir(path: str) -> None:
    """Make ``path`` a directory only this user can enter, refusing one somebody else prepared
    (the temporary directory is shared: another user could create the name first)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise AirlockError(
            f"{path} is not a directory of yours",
            hint="remove it (another user or program created it), then start the sandbox again",
        )
    os.chmod(path, 0o700)


def gate_allowlist(meta: dict, agent: str, services: dict[str, dict]) -> list[str]:
    """What the proxy lets through: the lockdown list, else (balanced) the agent's hosts and the registries;
    plus, always, the API host behind each credential endpoint."""
    from urllib.parse import urlsplit

    from git_airlock.agents import AGENTS
    from git_airlock.policy import TOOLING_PRESETS

    endpoints = []
    for service in services.values():
        url = urlsplit(service["upstream"])
        endpoints.append(f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}")
    if meta.get("network") == "lockdown":
        return list(dict.fromkeys([*(meta.get("allow") or []), *endpoints]))
    hosts = AGENTS[agent].hosts if agent in AGENTS else ()
    tooling = [host for preset in TOOLING_PRESETS.values() for host in preset]
    return list(dict.fromkeys([*hosts, *tooling, *(meta.get("extra_hosts") or []), *endpoints]))


def gate_services(urls: dict[str, str]) -> dict[str, dict]:
    """Credential endpoints for the services whose credential the host holds (stored, or in its environment)."""
    from git_airlock.secrets import available
    from git_airlock.services import SERVICES

    return {
        name: {
            "upstream": urls.get(name, service.upstream),
            "header": service.header,
            "prefix": service.prefix,
            "key_env": service.key_env,
        }
        for name, service in SERVICES.items()
        if available(name, service.key_env)
    }


def checkout_cache(tree: str) -> str:
    """A read-only checkout of one tree, shared by every sandbox made from it (the overlay's lower layer)."""
    return os.path.join(os.path.dirname(data_root()), "checkouts", tree)


def overlay_usable(probe_root: str) -> bool:
    """Whether this kernel lets us mount an overlay in a user namespace (Linux 5.11+), tried for real."""
    if not _overlay_tools() or re.search(r"[,:\\]", probe_root):
        return False
    os.makedirs(probe_root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=probe_root) as scratch:
        dirs = [os.path.join(scratch, d) for d in ("lower", "upper", "work", "merged")]
        for directory in dirs:
            os.mkdir(directory)
        probe = subprocess.run([*_overlay_prefix(*dirs, read_only=False), "true"], capture_output=True)
        _make_removable(scratch)
        return probe.returncode == 0


def _overlay_tools() -> bool:
    return bool(shutil.which("unshare") and shutil.which("mount"))


def _overlay_prefix(lower: str, upper: str, work: str, merged: str, read_only: bool) -> list[str]:
    helper = [sys.executable, "-m", "git_airlock.overlay", *(["--read-only"] if read_only else [])]
    return ["unshare", "--user", "--map-root-user", "--mount", "--", *helper, lower, upper, work, merged, "--"]


def _make_removable(root: str) -> None:
    """overlayfs leaves a mode-000 directory in its work dir; make everything removable."""
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


def _build_cache(common_dir: str, commit: str, cache: str) -> None:
    """Check out ``commit`` once into the shared cache (atomically: readers never see half of it)."""
    if os.path.isfile(os.path.join(cache, "index")):
        return
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(cache))
    os.mkdir(os.path.join(tmp, "tree"))
    subprocess.run(
        [
            "git",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.sparseCheckout=false",
            "-c",
            "checkout.workers=0",
            f"--git-dir={common_dir}",
            f"--work-tree={os.path.join(tmp, 'tree')}",
            "read-tree",
            "-u",
            "--reset",
            commit,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_INDEX_FILE": os.path.join(tmp, "index")},
    )
    try:
        os.rename(tmp, cache)
    except OSError:  # another sandbox built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


def _config_hash(git_dir: str) -> str:
    with open(os.path.join(git_dir, "config"), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def running_pids(name: str) -> list[int]:
    """bwrap processes of this user that run sandbox ``name`` (found by their marker argument)."""
    found = []
    uid = os.getuid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != b"bwrap":
            continue
        for i in range(len(argv) - 2):
            if argv[i] == b"--setenv" and argv[i + 1] == MARKER.encode() and argv[i + 2] == name.encode():
                found.append(int(entry))
                break
    return found


def _kill(name: str) -> None:
    """Stop every bwrap of the sandbox; its PID namespace takes all the sandbox's processes along."""
    pids = running_pids(name)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            if pids:
                time.sleep(0.02)
        if not pids:
            return
    raise AirlockError(f"could not stop sandbox {name}: processes {pids} survive", hint="kill them by hand")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class BwrapEngine:
    name = "bwrap"
    install_hint = INSTALL_HINT
    policy_reset_stops_sandboxes = False

    def executable(self) -> str | None:
        return shutil.which(BWRAP)

    def sandbox_home(self) -> str:
        return SANDBOX_HOME

    # -- state --------------------------------------------------------------

    def state(self, runner: Runner, name: str) -> SandboxState | None:
        paths = Paths(name)
        if runner.dry_run:
            runner.show(f"look for {paths.root} and running bwrap processes of sandbox {name}")
            return None
        if not paths.exists():
            return None
        pids = running_pids(name)
        meta = paths.read_meta()
        network = meta.get("network") or "the configured policy"
        detail = f"clone {paths.clone} ({meta.get('layout', 'plain')} working tree); network: {network}" + (
            f"; bwrap pid {', '.join(map(str, pids))}" if pids else ""
        )
        return SandboxState(name, "running" if pids else "stopped", meta.get("agent", ""), detail)

    # -- creating -----------------------------------------------------------

    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        paths = Paths(spec.name)
        plan = Plan()
        bad = [name for name in spec.pass_env if _SECRET_NAME.search(name)]
        if bad:
            raise AirlockError(
                f"AIRLOCK_PASS_ENV names {', '.join(bad)}, which look like credentials",
                hint="credentials stay on the host; pass only non-secret variables to the sandbox",
            )
        layout = self._create(plan, spec, paths) if not exists else None
        for seed in seeds:
            plan.call(f"copy {seed.source} to {seed.target}", lambda s=seed: _copy_seed(s, paths.home))
        self._plan_gate(
            plan, spec.name, spec.agent, spec.network, dict(spec.resolve), dict(spec.service_urls), spec.extra_hosts
        )
        command = [AGENT_COMMANDS.get(spec.agent, spec.agent), *agent_args]
        if not spec.dry_run and not _on_sandbox_path(command[0], paths.home):
            from git_airlock.agents import AGENTS

            package = AGENTS[spec.agent].npm_package if spec.agent in AGENTS else ""
            install = (
                f"npm install --global --prefix {paths.home}/.npm-global {package}"
                if package
                else f"install it into {paths.home}/.local/bin"
            )
            raise AirlockError(
                f"`{command[0]}` is not installed where the sandbox can run it",
                hint=f"the sandbox sees /usr and its own HOME, not yours: {install}",
            )
        argv = self.bwrap_argv(spec.name, command, spec, layout)
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
        """Write the egress proxy's configuration, when the sandbox's network goes through it."""
        meta = Paths(name).read_meta()
        if (meta.get("network") or network) in ("allow-all", "deny-all"):
            return
        if not os.access("/usr/bin/python3", os.X_OK):
            raise AirlockError(
                "the network allowlist needs python3 in /usr (it hands the sandbox's proxy socket to the egress gate)",
                hint="install python3, or choose GLOBAL_NETWORK_POLICY=deny-all or allow-all",
            )
        gate = Gate(name)
        resolve = resolve or meta.get("resolve") or {}
        urls = urls or meta.get("service_urls") or {}

        def write() -> None:
            if extra is not None:
                _remember(name, "extra_hosts", list(extra))
            services = gate_services(urls)
            gate.write(name, gate_allowlist(Paths(name).read_meta(), agent, services), resolve, services)
            _remember(name, "resolve", resolve)
            _remember(name, "service_urls", urls)

        plan.call(f"write the egress policy for {name} to {gate.config}", write)

    def _create(self, plan: Plan, spec: SandboxSpec, paths: Paths) -> tuple[str, str]:
        """Plan the sandbox's creation; returns its layout ("overlay" or "plain") and overlay lower dir."""
        remote = remote_name(spec.name)
        plan.call(f"create {paths.root} (home, etc)", lambda: _make_dirs(paths))
        plan.add(
            ["git", "clone", "--quiet", "--shared", "--no-checkout", "--template=", spec.repo_root, paths.clone],
            env=_ISOLATED_GIT,
        )
        for key, value in (
            ("user.name", f"git-airlock sandbox {spec.name}"),
            ("user.email", f"{spec.name}@sandbox.git-airlock.invalid"),
            ("remote.origin.url", SOURCE),
        ):
            plan.add(["git", "-C", paths.clone, "config", key, value], env=_ISOLATED_GIT)
        layout, lower = "plain", ""
        commit = _git_out(spec.repo_root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
        probe_root = os.path.join(os.path.dirname(data_root()), "probe")
        if commit and (_overlay_tools() if spec.dry_run else overlay_usable(probe_root)):
            cache = checkout_cache(_git_out(spec.repo_root, "rev-parse", f"{commit}^{{tree}}"))
            layout, lower = "overlay", os.path.join(cache, "tree")
            if not os.path.isfile(os.path.join(cache, "index")):
                plan.call(
                    f"check out {commit[:10]} once into the shared checkout {cache}",
                    lambda: _build_cache(spec.common_dir, commit, cache),
                )
            plan.call(
                "give the clone the shared checkout's index; its own changes go to an overlay layer",
                lambda: _start_overlay(paths, cache),
            )
        else:
            plan.add(
                ["git", "-C", paths.clone, "-c", "checkout.workers=0", "checkout", "--quiet", "--force"],
                env=_ISOLATED_GIT,
            )
        plan.add(["git", "-C", spec.repo_root, "config", f"remote.{remote}.url", paths.clone])
        tracking, recovery = fetch_refspecs(spec.name)
        plan.add(["git", "-C", spec.repo_root, "config", "--replace-all", f"remote.{remote}.fetch", tracking])
        plan.add(["git", "-C", spec.repo_root, "config", "--add", f"remote.{remote}.fetch", recovery])
        meta = {
            "name": spec.name,
            "agent": spec.agent,
            "repo": spec.repo_root,
            "common_dir": spec.common_dir,
            "network": None,
            "layout": layout,
            "lower": lower,
        }
        plan.call(
            f"record {paths.meta}",
            lambda: paths.write_meta({**meta, "config_sha256": _config_hash(paths.git_dir)}),
        )
        return layout, lower

    def bwrap_argv(
        self, name: str, command: list[str], spec: SandboxSpec | None = None, layout: tuple[str, str] | None = None
    ) -> list[str]:
        """The full command line; ``layout`` is given while the sandbox is still being created."""
        paths = Paths(name)
        meta = paths.read_meta()
        repo = spec.repo_root if spec else meta.get("repo", "")
        network = meta.get("network") or (spec.network if spec else "deny-all")
        kind, lower = layout or (meta.get("layout", "plain"), meta.get("lower", ""))
        workspace = f"/workspace/{os.path.basename(repo.rstrip('/')) or 'repo'}"
        overlay = kind == "overlay"
        prefix = _overlay_prefix(lower, paths.upper, paths.work, paths.merged, False) if overlay else []
        gate = Gate(name) if network not in ("allow-all", "deny-all") else None
        if gate:
            # the sandbox has no network; its only way out is the proxy, through a socket bound into it
            prefix = [sys.executable, "-m", "git_airlock.egress.supervise", gate.config, "--", *prefix]
            handoff = ["python3", "/run/airlock-handoff.py", str(PROXY_PORT), "/run/airlock/egress.sock", "--"]
            command = [*handoff, *command]
        argv = [
            *prefix,
            BWRAP,
            "--die-with-parent",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            f"airlock-{name}"[:63].rstrip("-."),
        ]
        if overlay:  # appear inside as yourself, not as the namespace's root
            argv += ["--uid", str(os.getuid()), "--gid", str(os.getgid())]
        if network != "allow-all":
            argv.append("--unshare-net")
        for top in SYSTEM_DIRS:
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        for entry in ETC_ENTRIES:
            if os.path.lexists(f"/etc/{entry}"):
                argv += ["--ro-bind", f"/etc/{entry}", f"/etc/{entry}"]
        argv += [
            "--ro-bind",
            os.path.join(paths.etc, "passwd"),
            "/etc/passwd",
            "--ro-bind",
            os.path.join(paths.etc, "group"),
            "/etc/group",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/var/tmp",
            "--tmpfs",
            "/run",
            "--ro-bind",
            repo,
            repo,
            "--ro-bind",
            repo,
            SOURCE,
            "--bind",
            paths.home,
            SANDBOX_HOME,
            "--bind",
            paths.merged if overlay else paths.clone,
            workspace,
            "--bind",
            paths.git_dir,
            f"{workspace}/.git",
            "--ro-bind",
            os.path.join(paths.git_dir, "config"),
            f"{workspace}/.git/config",
            "--chdir",
            workspace,
            "--clearenv",
        ]
        if gate:
            argv += ["--ro-bind", gate.socket_dir, "/run/airlock", "--ro-bind", HANDOFF_FILE, "/run/airlock-handoff.py"]
        env = {
            "HOME": SANDBOX_HOME,
            "PATH": SANDBOX_PATH,
            "USER": "agent",
            "LOGNAME": "agent",
            "SHELL": "/bin/bash",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": "/tmp",
            "TERM": os.environ.get("TERM", "xterm-256color"),
        }
        if gate:
            proxy = f"http://127.0.0.1:{PROXY_PORT}"
            for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[var] = proxy
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
            from git_airlock.services import PLACEHOLDER, SERVICES

            urls = dict(spec.service_urls) if spec else meta.get("service_urls") or {}
            for service_name in gate_services(urls):
                service = SERVICES[service_name]
                if service.base_url_env not in env:  # SERVICES lists the preferred credential first
                    env[service.base_url_env] = f"{proxy}/airlock/{service_name}{service.base_url_suffix}"
                    env[service.key_env] = PLACEHOLDER
        for var in spec.pass_env if spec else ():
            if var in os.environ:
                env[var] = os.environ[var]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--setenv", MARKER, name, "--", *command]
        return argv

    # -- lifecycle ----------------------------------------------------------

    def fetch_plan(self, name: str, running: bool) -> Plan:
        return Plan().call(
            f"check that sandbox {name}'s clone was not turned against the host", lambda: verify_clone(name)
        )

    def shell_plan(self, name: str) -> Plan:
        if Paths(name).read_meta().get("layout") == "overlay" and running_pids(name):
            raise AirlockError(
                f"sandbox {name} is running, and its copy-on-write working tree can be mounted only once",
                hint="open a shell from the agent's terminal (`git airlock attach`), or stop it first",
            )
        meta = Paths(name).read_meta()
        plan = Plan()
        self._plan_gate(plan, name, meta.get("agent", ""), meta.get("network") or "deny-all", {}, {})
        return plan.extend(Plan([Step(tuple(self.bwrap_argv(name, ["bash"])), interactive=True, check=False)]))

    def stop_plan(self, name: str) -> Plan:
        return Plan().call(f"stop the bwrap processes of sandbox {name}", lambda: _kill(name))

    def remove_plan(self, name: str, repo_root: str) -> Plan:
        paths = Paths(name)
        remote = remote_name(name)
        plan = self.stop_plan(name)
        plan.call(f"remove {paths.root}", lambda: _remove_tree(paths.root))
        plan.add(["git", "-C", repo_root, "config", "--remove-section", f"remote.{remote}"], check=False)
        plan.call(
            f"delete refs/remotes/{remote}/* (refs/sandboxes/{name}/* stay for recovery)",
            lambda: _delete_refs(repo_root, f"refs/remotes/{remote}/"),
        )
        return plan

    # -- network ------------------------------------------------------------

    def policy_init_plan(self, mode: str) -> Plan:
        return Plan()

    def lockdown_plan(self, name: str, hosts: list[str]) -> Plan:
        return Plan().call(
            f"set sandbox {name}'s network to its allowlist ({len(hosts)} rule(s)) from its next start",
            lambda: _set_network(name, "lockdown", hosts),
        )

    def unlock_plan(self, name: str | None, mode: str) -> Plan:
        if name is None:
            raise AirlockError("the bwrap engine's network is set per sandbox", hint="run `unlock` in the repository")
        return Plan().call(
            f"set sandbox {name}'s network back to {mode} from its next start", lambda: _set_network(name, None)
        )

    def net_plan(self, name: str | None) -> Plan:
        return Plan()

    def net_logs(self, name: str | None) -> list[str]:
        """The egress proxy's connection logs (JSON lines): one sandbox's, or every sandbox's."""
        folder = Gate.log_dir()
        if name:
            log = Gate(name).log
            return [log + ".1", log]  # the older file first (the log is rotated when it grows large)
        return sorted(os.path.join(folder, f) for f in os.listdir(folder)) if os.path.isdir(folder) else []

    # -- the clone from the host side ---------------------------------------

    def _worktree_git(self, name: str, *args: str, writable: bool = False) -> list[str]:
        """A host-side git command on the clone's working tree, without any of the user's configuration.

        For the overlay layout, git runs in a private mount namespace that stacks the sandbox's layer on
        the shared checkout (read-only unless ``writable``); the mount never exists on the host.
        """
        paths = Paths(name)
        meta = paths.read_meta()
        overlay = meta.get("layout") == "overlay"
        tree = paths.merged if overlay else paths.clone
        git = [
            "git",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
            f"--git-dir={paths.git_dir}",
            f"--work-tree={tree}",
            "-C",
            tree,
            *args,
        ]
        if not overlay:
            return git
        return [*_overlay_prefix(meta["lower"], paths.upper, paths.work, paths.merged, not writable), *git]

    def uncommitted(self, name: str) -> list[str]:
        """Changed paths in the clone's working tree (the agent's work not committed yet)."""
        if not Paths(name).exists():
            return []
        proc = subprocess.run(
            self._worktree_git(name, "status", "--porcelain", "-z", "--untracked-files=all"),
            capture_output=True,
            text=True,
            errors="surrogateescape",
            env={**os.environ, **_ISOLATED_GIT},
        )
        return [entry[3:] for entry in proc.stdout.split("\0") if len(entry) > 3]

    def commit_plan(self, name: str, message: str) -> Plan:
        paths = Paths(name)
        if paths.read_meta().get("layout") == "overlay" and running_pids(name):
            raise AirlockError(
                f"sandbox {name} is running; its working tree can only be changed from inside while it runs",
                hint="commit from the agent's terminal (`git airlock attach`), or `git airlock stop` first",
            )
        return Plan(
            [
                Step(tuple(self._worktree_git(name, "add", "--all", writable=True)), env=_ISOLATED_GIT),
                Step(
                    tuple(self._worktree_git(name, "commit", "--quiet", "--no-verify", "-m", message, writable=True)),
                    env=_ISOLATED_GIT,
                ),
            ]
        )


def _on_sandbox_path(command: str, home: str) -> bool:
    """Whether ``command`` exists on the sandbox's PATH, looked up through the host paths behind it."""
    for folder in SANDBOX_PATH.split(":"):
        host = home + folder[len(SANDBOX_HOME) :] if folder.startswith(SANDBOX_HOME) else folder
        if os.access(os.path.join(host, command), os.X_OK):
            return True
    return False


def _git_out(repo: str, *args: str) -> str:
    return Git(repo, safe=False).run(*args, check=False).strip()


def _start_overlay(paths: Paths, cache: str) -> None:
    for directory in (paths.upper, paths.work, paths.merged):
        os.makedirs(directory, exist_ok=True)
    shutil.copyfile(os.path.join(cache, "index"), os.path.join(paths.git_dir, "index"))


def _remove_tree(root: str) -> None:
    if os.path.isdir(root):
        _make_removable(root)
        shutil.rmtree(root, ignore_errors=True)


def _make_dirs(paths: Paths) -> None:
    for directory in (paths.root, paths.home, paths.etc):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    uid, gid = os.getuid(), os.getgid()
    user = "root" if uid == 0 else "agent"
    with open(os.path.join(paths.etc, "passwd"), "w", encoding="utf-8") as handle:
        handle.write(f"{user}:x:{uid}:{gid}:sandbox agent:{SANDBOX_HOME}:/bin/bash\n")
        if uid != 0:
            handle.write("root:x:0:0:root:/root:/bin/false\n")
        handle.write("nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(paths.etc, "group"), "w", encoding="utf-8") as handle:
        handle.write(f"{user}:x:{gid}:\n" + ("root:x:0:\n" if gid != 0 else "") + "nogroup:x:65534:\n")


def _copy_seed(seed: SeedFile, home: str) -> None:
    relative = os.path.relpath(seed.target, SANDBOX_HOME)
    target = os.path.join(home, relative)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(seed.source, target)


def _delete_refs(repo_root: str, prefix: str) -> None:
    git = Git(repo_root, safe=False)
    refs = git.refs(prefix)
    if refs:
        git.run("update-ref", "--stdin", input="".join(f"delete {ref}\n" for ref in refs))


def _remember(name: str, key: str, value: object) -> None:
    paths = Paths(name)
    meta = paths.read_meta()
    meta[key] = value
    paths.write_meta(meta)


def _set_network(name: str, mode: str | None, allow: list[str] | None = None) -> None:
    paths = Paths(name)
    if not paths.exists():
        raise AirlockError(f"no sandbox named {name!r}", hint="start one with `git airlock --engine bwrap up`")
    meta = paths.read_meta()
    meta["network"] = mode
    meta["allow"] = allow
    paths.write_meta(meta)


def verify_clone(name: str) -> None:
    """Refuse to fetch from a clone whose git configuration the sandbox managed to change.

    A host-side ``git fetch`` runs ``git upload-pack`` in the clone, which
    obeys the clone's configuration (``core.alternateRefsCommand`` runs a
    command) and a ``commondir`` file (which points at another configuration).
    The sandbox sees ``.git/config`` read-only; this check makes sure.
    """
    paths = Paths(name)
    if not paths.exists():
        return
    planted = [f for f in ("commondir", "gitdir", "config.worktree") if os.path.lexists(os.path.join(paths.git_dir, f))]
    expected = paths.read_meta().get("config_sha256")
    if planted or (expected and _config_hash(paths.git_dir) != expected):
        what = ", ".join(planted) or "config"
        raise AirlockError(
            f"sandbox {name}'s clone has a changed or planted .git/{what}; not fetching from it",
            hint=f"inspect {paths.git_dir} (or remove the sandbox with `git airlock rm --no-fetch`)",
        )
