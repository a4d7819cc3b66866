"""Wiring a sandbox to its egress gate: where the gate lives, and what it lets through.

The sandbox's network namespace holds only its loopback; ``egress.handoff``
inside hands a listening socket to the gate (``egress.supervise``) on the
host, which applies the policy written here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import TYPE_CHECKING

from git_airlock.engines.bwrap import userns
from git_airlock.engines.bwrap.layout import Paths, SandboxMeta, marker, private_dir
from git_airlock.errors import AirlockError
from git_airlock.jsonfile import write_json

if TYPE_CHECKING:
    from git_airlock.egress.supervise import GateConfig
    from git_airlock.plan import Plan
    from git_airlock.services import Endpoint

PROXY_PORT = 3128
SOCKET_PATH_MAX = 108
"""``sun_path``'s size on Linux, its terminating NUL included."""


def handoff_file() -> str:
    """The script that runs first inside the sandbox and hands its listening socket to the gate."""
    from git_airlock.egress import handoff

    return handoff.__file__


class Gate:
    """Where a sandbox's egress gate lives: its socket (short path: Unix sockets allow ~100 bytes),
    the gate's configuration, and the connection log.

    Only ``socket_dir`` is seen by the sandbox, and read-only (connecting to a socket needs no
    write access to its mount): the configuration beside it stays out of the sandbox's reach,
    so it can neither rewrite the policy nor plant a symlink for the host to write through.
    The folder is named after the sandbox's unique tag, so two repositories that used one
    name never share a gate.
    """

    def __init__(self, name: str, tag: str) -> None:
        key = hashlib.sha256(tag.encode()).hexdigest()[:12]
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

    def write(
        self,
        name: str,
        allow: list[str],
        resolve: dict[str, str],
        services: dict[str, Endpoint],
        owner: tuple[int, int] | None = None,
    ) -> None:
        """The gate's configuration: rules and service endpoints, never a credential (the gate reads those).

        ``owner``: the sandbox root's host uid and gid, when it is not the user: the socket's folder and
        the socket are given to it (the folder above stays the user's alone)."""
        if len(os.fsencode(self.socket)) >= SOCKET_PATH_MAX:
            raise AirlockError(
                f"the temporary directory's path is too long for the egress gate's socket ({self.socket})",
                hint="set TMPDIR to a shorter path (a Unix socket's path holds at most 107 bytes), or /tmp",
            )
        for path in (self.root, self.dir):
            private_dir(path)
        private_dir(self.socket_dir, owner)
        os.makedirs(self.log_dir(), mode=0o700, exist_ok=True)
        os.chmod(self.log_dir(), 0o700)  # what the sandbox tried to reach is nobody else's business
        config: GateConfig = {
            "sandbox": name,
            "socket": self.socket,
            "log": self.log,
            "allow": allow,
            "resolve": resolve,
            "services": services,
        }
        if owner:
            config["owner"] = list(owner)
        write_json(self.config, config, indent=2)


def plan_config(
    plan: Plan,
    name: str,
    agent_hosts: tuple[str, ...],
    network: str,
    resolve: dict[str, str],
    urls: dict[str, str],
    extra: tuple[str, ...] | None = None,
) -> None:
    """Write the egress gate's configuration, when the sandbox's network goes through it.

    ``agent_hosts``: the hosts of the agent that will run (balanced mode lets them through);
    ``resolve``, ``urls`` and ``extra``: ``up``'s settings, remembered for a later ``shell``."""
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
        endpoints = services(urls)
        current = paths.read_meta()
        ids = userns.from_meta(current)
        owner = ids.chown if ids else None
        Gate(name, marker(name, current)).write(
            name, allowlist(current, agent_hosts, endpoints), resolve, endpoints, owner
        )
        paths.remember(resolve=resolve, service_urls=urls)

    plan.call(f"write the egress policy for {name} (beside its gate socket, out of the sandbox's reach)", write)


def allowlist(meta: SandboxMeta, agent_hosts: tuple[str, ...], services: dict[str, Endpoint]) -> list[str]:
    """What the gate lets through: the lockdown list, else (balanced) the agent's hosts and the registries;
    plus, always, the API host behind each credential endpoint."""
    from urllib.parse import urlsplit

    from git_airlock.policy import TOOLING_PRESETS

    endpoints = []
    for service in services.values():
        url = urlsplit(service["upstream"])
        endpoints.append(f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}")
    if meta.get("network") == "lockdown":
        return list(dict.fromkeys([*(meta.get("allow") or []), *endpoints]))
    tooling = [host for preset in TOOLING_PRESETS.values() for host in preset]
    return list(dict.fromkeys([*agent_hosts, *tooling, *(meta.get("extra_hosts") or []), *endpoints]))


def services(urls: dict[str, str]) -> dict[str, Endpoint]:
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


def problems(log_paths: list[str], since: float, network: str) -> list[str]:
    """What the gate saw go wrong since ``since``, one line per destination, for after a run.

    The agent's own account of a failure (a blocked host, a refused key) stays inside its sandbox;
    the gate's log says which host and which setting, so the user can tell the parts apart.
    """
    import json

    found: dict[str, str] = {}
    for path in log_paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.readlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
                when, host, port = float(entry["time"]), str(entry["host"]), int(entry["port"])
            except (ValueError, KeyError, TypeError):
                continue
            if when < since:
                continue
            where = f"{host}:{port}"
            if entry.get("action") == "blocked":
                found.setdefault(where, _blocked(where, host, network, entry.get("reason")))
            elif entry.get("action") == "failed":
                found.setdefault(where, f"{where} could not be reached through the gate")
            elif entry.get("credential") and entry.get("status") in (401, 403):
                found.setdefault(
                    where,
                    f"{host} answered {entry['status']} to the {entry['credential']} credential the host holds: "
                    f"store a valid one with `git airlock secret set {entry['credential']}`",
                )
    return list(found.values())


def _blocked(where: str, host: str, network: str, reason: object) -> str:
    from git_airlock.egress.rules import NOT_ALLOWED

    if reason and reason != NOT_ALLOWED:
        return f"{where} was refused by the gate: {reason}"
    if network == "lockdown":
        return f"{where} was blocked by the lockdown allowlist: add it to ALLOW, then `git airlock lockdown`"
    return (
        f"{where} was blocked by the network policy; to let this repository's sandboxes reach it: "
        f"`git config airlock.preset.extra {host}` (or name the port: {where})"
    )
