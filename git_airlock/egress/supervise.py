"""Serve a sandbox's egress proxy while its bwrap runs.

``python -m git_airlock.egress.supervise CONFIG.json -- COMMAND...``: reads
the sandbox's policy from CONFIG, serves the proxy on the Unix socket that
CONFIG names (bound into the sandbox), runs COMMAND (bwrap) as its child and
exits with its status. bwrap runs with --die-with-parent, so the sandbox
never outlives its gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, TypedDict

from git_airlock.egress.connectlog import JsonLog
from git_airlock.egress.proxy import MAX_CONNECTIONS, Proxy
from git_airlock.egress.rules import Rules
from git_airlock.egress.tunnel import MAX_PIPES
from git_airlock.secrets import lookup

if TYPE_CHECKING:
    from git_airlock.services import CredentialEndpoint, Endpoint


class _GateBasics(TypedDict):
    sandbox: str
    socket: str
    log: str
    allow: list[str]


class GateConfig(_GateBasics, total=False):
    """The gate's configuration file, as ``engines.bwrap.gate`` writes it: policy and endpoints, no credential."""

    resolve: dict[str, str]
    services: dict[str, Endpoint]
    owner: list[int]
    """The sandbox root's host uid and gid, when the socket must be given to it (it connects as them)."""
    deny: list[str]
    allow_all: bool


class _Control(TypedDict, total=False):
    stop: asyncio.Event
    loop: asyncio.AbstractEventLoop


_control: _Control = {}
"""The proxy thread's loop and stop event, for the main thread to end it."""


def serve(config: GateConfig, max_connections: int, started: threading.Event) -> None:
    """Run the proxy on the config's Unix socket until told to stop (in its own thread)."""

    async def main() -> None:
        stop = asyncio.Event()
        _control.update({"stop": stop, "loop": asyncio.get_running_loop()})
        log = JsonLog(config["log"])
        resolve = config.get("resolve") or {}
        services: dict[str, CredentialEndpoint] = {}
        for name, service in (config.get("services") or {}).items():
            secret = lookup(name, service["key_env"])
            if secret:
                services[name] = {**service, "secret": secret}
        proxy = Proxy(
            config["sandbox"],
            Rules(config["allow"], config.get("deny", []), config.get("allow_all", False)),
            log,
            lambda host: resolve.get(host, host),
            services,
        )
        proxy.max_connections = max_connections
        with contextlib.suppress(FileNotFoundError):
            os.unlink(config["socket"])
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(config["socket"])
        os.chmod(config["socket"], 0o600)
        if config.get("owner"):
            os.chown(config["socket"], *config["owner"])
        listener.listen(128)
        serving = asyncio.ensure_future(proxy.serve(listener, handoff=True))
        started.set()
        await stop.wait()
        serving.cancel()
        await proxy.close()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        listener.close()
        log.close()

    asyncio.run(main())


def connection_cap() -> int:
    """How many connections the proxy may hold, raising the descriptor limit as far as allowed.

    Each connection takes two sockets (three while a TLS bridge runs); the pipes, at most
    MAX_PIPES of two descriptors, come on top. The usual soft limit (1024) would otherwise
    run out before MAX_CONNECTIONS, and the connections beyond it would fail half-made.
    """
    import resource

    reserve = 2 * MAX_PIPES + 64  # pipes, the log, the Unix socket, listeners, the interpreter's own
    wanted = MAX_CONNECTIONS * 3 + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, (soft - reserve) // 3))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m git_airlock.egress.supervise CONFIG.json -- COMMAND...", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        config: GateConfig = json.load(handle)
    os.makedirs(os.path.dirname(config["socket"]), mode=0o700, exist_ok=True)
    os.makedirs(os.path.dirname(config["log"]), mode=0o700, exist_ok=True)
    started = threading.Event()
    thread = threading.Thread(target=serve, args=(config, connection_cap(), started), daemon=True)
    thread.start()
    if not started.wait(10):
        print("git-airlock: the egress proxy did not start", file=sys.stderr)
        return 1
    child = subprocess.Popen(argv[2:])
    # Ctrl-C belongs to the agent in the foreground; ignored only now, as an ignored signal
    # would stay ignored in the child across exec
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # `stop` signals every process of the sandbox, this one too: pass it on to the sandbox and shut the
    # gate down as when the sandbox ends by itself (log written out, socket removed)
    signal.signal(signal.SIGTERM, lambda number, frame: child.terminate())
    code = child.wait()
    _control["loop"].call_soon_threadsafe(_control["stop"].set)
    thread.join(5)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(config["socket"])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
