"""The agent's sandbox: the whole command line that starts it.

On top of what every sandbox gets (``confine``): its own system layer (``system``)
in place of the host's system, the host repository read-only at its own path and
at ``/run/sandbox/source``, the clone read-write at ``/workspace/<repo>`` (its
``.git/config`` read-only), the persistent HOME at ``/home/agent`` (with the
agent's own folders from the user's store where its state is kept), an empty
environment plus a few variables, and, unless the policy is ``allow-all``, a
network namespace of its own whose only way out is the egress gate.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

from git_airlock.agents import Agent, recorded_agent
from git_airlock.engines.base import SandboxSpec
from git_airlock.engines.bwrap import agentstate, confine, overlay, userns
from git_airlock.engines.bwrap.agents import Store
from git_airlock.engines.bwrap.clone import SOURCE, mounts, repository_source, repository_view, workspace
from git_airlock.engines.bwrap.gate import PROXY_PORT, Gate, handoff_file
from git_airlock.engines.bwrap.layout import SANDBOX_HOME, SANDBOX_USER, Paths, SandboxMeta, marker
from git_airlock.engines.bwrap.processes import MARKER
from git_airlock.engines.bwrap.system import Layer

DEFAULT_TMP_SIZE = 2 * 1024**3
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""Debian's and Ubuntu's bundle of the system's certificate authorities (the sandbox sees /etc/ssl)."""
HANDOFF = "/run/airlock-handoff.py"
"""Where ``egress.handoff``, the agent's first program (gated or not), lies inside."""


def sandbox_path() -> str:
    """PATH inside: the sandbox's own installs first, then the agents git-airlock installed, then the system's."""
    return ":".join(
        (
            f"{SANDBOX_HOME}/.local/bin",
            f"{SANDBOX_HOME}/.npm-global/bin",
            Store().bin,
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        )
    )


def _network(meta: SandboxMeta, spec: SandboxSpec | None) -> str:
    return meta.get("network") or (spec.network if spec else "deny-all")


def _gated(meta: SandboxMeta, spec: SandboxSpec | None) -> bool:
    """Whether the sandbox's network goes through the egress gate (everything but allow-all and deny-all)."""
    return _network(meta, spec) not in ("allow-all", "deny-all")


def agent_argv(
    name: str, meta: SandboxMeta, env: dict[str, str], command: list[str], spec: SandboxSpec | None = None
) -> list[str]:
    """The full command line. ``meta`` is the sandbox's record (the one it is about to get, while it is
    being created); ``env`` comes from :func:`sandbox_environment`; ``spec`` is given by ``up``, not ``shell``."""
    paths = Paths(name)
    repo = spec.repo_root if spec else meta.get("repo", "")
    tmp_size = spec.tmp_size if spec else meta.get("tmp_size") or DEFAULT_TMP_SIZE
    gate = Gate(name, marker(name, meta)) if _gated(meta, spec) else None
    ids = userns.of_sandbox(meta)
    layer = Layer(paths.root)
    layered = meta.get("system", "none") != "none"
    state = kept_state(meta)
    mounts_spec = overlay.combine(
        repository_view(paths, repo, ids),
        overlay.mounts(paths, meta, ids),
        layer.mounts(meta.get("system", "none"), ids) if layered else {},
        state.entered(paths, spec.dry_run if spec else False) if state else {},
    )
    prefix: list[str] = []
    handoff = ["python3", HANDOFF]
    if gate:
        # the sandbox has no network; its only way out is the gate, through a socket bound into it
        prefix = [sys.executable, "-m", "git_airlock.egress.supervise", gate.config, "--"]
        handoff += [str(PROXY_PORT), "/run/airlock/egress.sock"]
    command = [*handoff, "--", *command]  # the agent's start inside: its own terminal job, default signals
    argv = [
        *confine.namespaces(
            network=_network(meta, spec) == "allow-all",
            terminal=True,
            hostname=hostname(name),
            capabilities=confine.AGENT_CAPABILITIES,
        ),
        *(layer.binds() + confine.links() if layered else confine.system(paths)),
        *confine.scratch(tmp_size, None),
        *mounts(paths, meta, repo, writable=True),
        "--ro-bind",
        repository_source(paths, repo, ids),
        SOURCE,
        *_source_config_mounts(paths, repo),
        *Store().mounts(),
        "--bind",
        paths.home,
        SANDBOX_HOME,
        *(state.binds(paths) if state else []),
        "--chdir",
        workspace(repo),
        "--clearenv",
    ]
    argv += ["--ro-bind", handoff_file(), HANDOFF]
    if gate:
        argv += ["--ro-bind", gate.socket_dir, "/run/airlock"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--setenv", MARKER, marker(name, meta), "--", *command]
    return [*prefix, *confine.entered(ids, mounts_spec, argv)]


def kept_state(meta: SandboxMeta) -> agentstate.Store | None:
    """The store of the agent's state the sandbox was made to use, if it was."""
    return agentstate.Store(recorded_agent(meta.get("agent", ""))) if meta.get("agent_state") else None


def hostname(name: str) -> str:
    """The sandbox's host name: ``airlock-<name>``, cut to what a host name may hold."""
    return f"airlock-{name}"[:63].rstrip("-.")


SOURCE_CONFIG_KEYS = re.compile(
    r"core\.(repositoryformatversion|bare|filemode|symlinks|ignorecase|precomposeunicode|logallrefupdates)"
    r"|extensions\.[^.]+"
)
"""What the agent's git needs of the host repository's config to read it; nothing else of it reaches
the sandbox. The rest can hold credentials: a token in a remote's URL, the authorization header a CI
checkout leaves in ``http.<url>.extraheader``, credential helpers, include paths."""


def write_source_config(paths: Paths, repo: str) -> None:
    """The host repository's config as the sandbox sees it (written before every start)."""
    from git_airlock.process import run

    config = os.path.join(repo, ".git", "config")
    if not os.path.isfile(config):
        return
    listed = run(["git", "config", "--file", config, "--null", "--list"], check=False).stdout
    sections: dict[str, list[str]] = {}
    for item in filter(None, listed.split("\0")):
        key, _, value = item.partition("\n")
        if SOURCE_CONFIG_KEYS.fullmatch(key):
            section, _, name = key.partition(".")
            escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            sections.setdefault(section, []).append(f'\t{name} = "{escaped}"\n')
    text = "".join(f"[{section}]\n" + "".join(lines) for section, lines in sections.items())
    os.makedirs(paths.etc, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=paths.etc, prefix=".source-config-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, paths.source_config)  # a running sandbox keeps the file it was given


def _source_config_mounts(paths: Paths, repo: str) -> list[str]:
    """The filtered config over the host repository's own, at both places the sandbox sees it."""
    if not os.path.isfile(os.path.join(repo, ".git", "config")):
        return []
    argv: list[str] = []
    for root in (repo, SOURCE):
        argv += ["--ro-bind", paths.source_config, f"{root}/.git/config"]
    return argv


def sandbox_environment(meta: SandboxMeta, spec: SandboxSpec | None, agent: Agent) -> dict[str, str]:
    """Everything the sandbox's processes see in their environment: a few basics, the gate and its
    credential endpoints (with placeholders), the agent's own switches, and what the user passes on."""
    env = {
        "HOME": SANDBOX_HOME,
        "PATH": sandbox_path(),
        "USER": SANDBOX_USER,
        "LOGNAME": SANDBOX_USER,
        "SHELL": "/bin/bash",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": "/tmp",
        "TERM": os.environ.get("TERM", "xterm-256color"),
    }
    if os.path.isfile(SYSTEM_CA_BUNDLE):
        # Node keeps its own list of authorities; this makes node agents and npm trust the system's, as
        # everything else in the sandbox does (a company's TLS-inspecting proxy, say)
        env["NODE_EXTRA_CA_CERTS"] = SYSTEM_CA_BUNDLE
    if _gated(meta, spec):
        from git_airlock.engines.bwrap.gate import services
        from git_airlock.services import PLACEHOLDER, SERVICES

        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[var] = proxy
        env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        urls = dict(spec.service_urls) if spec else meta.get("service_urls") or {}
        for service_name in services(urls):
            service = SERVICES[service_name]
            if service.base_url_env not in env:  # SERVICES lists the preferred credential first
                env[service.base_url_env] = f"{proxy}/airlock/{service_name}{service.base_url_suffix}"
                env[service.key_env] = PLACEHOLDER
    env.update(agent.sandbox_environment(env))
    if meta.get("agent_state"):
        env.update(agent.kept_state_environment(env))
    for var in spec.pass_env if spec else ():
        if var in os.environ:
            env[var] = os.environ[var]
    return env
