"""Throughput and latency through the bwrap egress gate, as ratios to the same traffic without it.

Run by hand: ``python bench/egress.py [--size-mb 400] [--requests 2000] [--rounds 5]``.

The path measured is the one a sandboxed client uses: the client connects to
127.0.0.1:PORT, a listening socket that ``git_airlock/egress/handoff.py``
opened and handed to the gate (``python -m git_airlock.egress.supervise``),
which checks the policy, dials the upstream server and splices the two
sockets together. Client, gate and upstream each run in their own process on
this machine. Clients use ``CONNECT`` tunnels, as HTTPS clients do.
"direct" is the same client talking to the upstream server itself.

Reported, as medians over the rounds (direct and gated alternate in each):
aggregate throughput of large downloads with 1 and 50 concurrent clients;
the median time of a small request on a new connection (connect, tunnel,
request, response) with 1 and 50 concurrent clients sending back to back
(which saturates this machine's cores), and with 50 clients each sending
one request every 50 ms; and the gate's own CPU time per small request.
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


async def latency(port: int, via: bool, upstream: int, clients: int, requests: int, pace: float = 0.0) -> float:
    """Median milliseconds of a small request; ``pace``: seconds between one client's request starts."""
    samples: list[float] = []

    async def one_client(offset: float) -> None:
        await asyncio.sleep(offset)
        for _ in range(requests // clients):
            start = time.perf_counter()
            await fetch(port, 100, via, upstream)
            samples.append((time.perf_counter() - start) * 1000)
            if pace:
                await asyncio.sleep(max(0.0, pace - (time.perf_counter() - start)))

    await asyncio.gather(*(one_client(pace * i / clients) for i in range(clients)))
    return statistics.median(samples)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
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
        port = free_port()
        gate = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "git_airlock.egress.supervise",
                str(config),
                "--",
                sys.executable,
                str(ROOT / "git_airlock/egress/handoff.py"),
                str(port),
                f"{tmp}/egress.sock",
                "--",
                "sleep",
                "3600",
            ],
            env=env,
            start_new_session=True,
        )
        try:
            for _ in range(500):  # until the gate serves the handed-over socket
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.01)
            report(args, port, upstream, gate.pid)
        finally:
            os.killpg(gate.pid, 15)  # the gate and its stand-in agent
            upstream_proc.terminate()
            gate.wait()
            upstream_proc.wait()


def report(args: argparse.Namespace, port: int, upstream: int, gate_pid: int) -> None:
    size = args.size_mb * 1_000_000
    rows = []
    for clients in (1, 50):
        direct, gated = [], []
        for _ in range(args.rounds):
            direct.append(asyncio.run(throughput(upstream, False, upstream, clients, size)))
            gated.append(asyncio.run(throughput(port, True, upstream, clients, size)))
        d, g = statistics.median(direct), statistics.median(gated)
        label = f"large download, {clients} client(s)"
        rows.append((label, f"{d:8.0f} MB/s", f"{g:8.0f} MB/s", f"{g / d:6.0%} of direct"))
    gate_cpu = []
    for label, clients, pace in (
        ("small request, 1 client", 1, 0.0),
        ("small request, 50 back to back", 50, 0.0),
        ("small request, 50 at 20/s each", 50, 0.05),
    ):
        requests = args.requests if not pace else 50 * 20
        direct, gated = [], []
        for _ in range(args.rounds):
            direct.append(asyncio.run(latency(upstream, False, upstream, clients, requests, pace)))
            before = cpu_seconds(gate_pid)
            gated.append(asyncio.run(latency(port, True, upstream, clients, requests, pace)))
            gate_cpu.append((cpu_seconds(gate_pid) - before) / requests * 1e6)
        d, g = statistics.median(direct), statistics.median(gated)
        rows.append((label, f"{d:8.2f} ms", f"{g:8.2f} ms", f"+{g - d:5.2f} ms median"))
    print(f"{'':<34} {'direct':>12} {'through gate':>14}  ratio")
    for label, direct_text, gated_text, ratio in rows:
        print(f"{label:<34} {direct_text:>12} {gated_text:>14}  {ratio}")
    print(f"gate CPU per small request: {statistics.median(gate_cpu):.0f} us (median over all latency rounds)")


if __name__ == "__main__":
    main()
