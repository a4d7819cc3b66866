"""Throughput and latency through the bwrap egress gate, as ratios to the same traffic without it.

Run by hand: ``python bench/egress.py [--size-mb 200] [--requests 400]``.

The path measured is the one a sandboxed client uses: client -> the relay
(``git_airlock/egress/relay.py`` on 127.0.0.1, as inside a sandbox) -> the
gate's Unix socket (``python -m git_airlock.egress.supervise``) -> the
upstream server, all on this machine, each in its own process. Clients use
``CONNECT`` tunnels, as HTTPS clients do. "direct" is the same client
talking to the upstream server itself.

Reported: aggregate throughput of large downloads with 1 and 50 concurrent
clients, and the median time of a small request on a new connection (connect,
tunnel, request, response) with 1 and 50 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = """
import asyncio, sys
CHUNK = b"x" * 262144
async def handle(reader, writer):
    line = await reader.readline()
    while (await reader.readline()) not in (b"\\r\\n", b""):
        pass
    size = int(line.split()[1].lstrip(b"/"))
    writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % size)
    while size > 0:
        writer.write(CHUNK[:size])
        size -= len(CHUNK)
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def fetch(port: int, size: int, via_proxy: bool, upstream: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    if via_proxy:
        writer.write(f"CONNECT upstream.test:{upstream} HTTP/1.1\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
    writer.write(f"GET /{size} HTTP/1.1\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    received = 0
    while data := await reader.read(1 << 20):
        received += len(data)
    writer.close()
    return received


async def throughput(port: int, via: bool, upstream: int, clients: int, size: int) -> float:
    start = time.perf_counter()
    sizes = await asyncio.gather(*(fetch(port, size // clients, via, upstream) for _ in range(clients)))
    return sum(sizes) / (time.perf_counter() - start) / 1e6


async def latency(port: int, via: bool, upstream: int, clients: int, requests: int) -> float:
    samples: list[float] = []

    async def one_client() -> None:
        for _ in range(requests // clients):
            start = time.perf_counter()
            await fetch(port, 100, via, upstream)
            samples.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="ga-bench-") as tmp:
        upstream_proc = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True)
        upstream = int(upstream_proc.stdout.readline())
        config = Path(tmp) / "egress.json"
        config.write_text(
            json.dumps(
                {
                    "sandbox": "bench",
                    "socket": f"{tmp}/egress.sock",
                    "log": f"{tmp}/log.jsonl",
                    "allow": ["upstream.test"],
                    "resolve": {"upstream.test": "127.0.0.1"},
                }
            )
        )
        relay_port = free_port()
        gate = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "git_airlock.egress.supervise",
                str(config),
                "--",
                sys.executable,
                str(ROOT / "git_airlock/egress/relay.py"),
                str(relay_port),
                f"{tmp}/egress.sock",
                "--",
                "sleep",
                "3600",
            ],
            env=env,
            start_new_session=True,
        )
        try:
            for _ in range(500):  # until the relay answers
                try:
                    socket.create_connection(("127.0.0.1", relay_port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.01)
            size = args.size_mb * 1_000_000
            rows = []
            for clients in (1, 50):
                direct = asyncio.run(throughput(upstream, False, upstream, clients, size))
                gated = asyncio.run(throughput(relay_port, True, upstream, clients, size))
                rows.append(
                    (
                        f"large download, {clients} client(s)",
                        f"{direct:8.0f} MB/s",
                        f"{gated:8.0f} MB/s",
                        f"{gated / direct:6.0%} of direct",
                    )
                )
            for clients in (1, 50):
                direct = asyncio.run(latency(upstream, False, upstream, clients, args.requests))
                gated = asyncio.run(latency(relay_port, True, upstream, clients, args.requests))
                rows.append(
                    (
                        f"small request, {clients} client(s)",
                        f"{direct:8.2f} ms",
                        f"{gated:8.2f} ms",
                        f"+{gated - direct:5.2f} ms median",
                    )
                )
            print(f"{'':<32} {'direct':>12} {'through gate':>14}  ratio")
            for label, direct_text, gated_text, ratio in rows:
                print(f"{label:<32} {direct_text:>12} {gated_text:>14}  {ratio}")
        finally:
            os.killpg(gate.pid, 15)  # the gate, the relay and its stand-in agent
            upstream_proc.terminate()
            gate.wait()
            upstream_proc.wait()


if __name__ == "__main__":
    main()
