"""Throughput and latency through the bwrap egress gate, as ratios to the same traffic without it.

Run by hand: ``python bench/egress.py [--size-mb 3000] [--requests 2000] [--rounds 7]``.

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
one request every 50 ms; and the CPU time each process (client, gate,
upstream) spends per small request, which explains the saturated case.
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
import asyncio, socket, tempfile
BLOCK = 4 << 20
data = tempfile.TemporaryFile()
data.write(b"x" * BLOCK)
data.flush()
async def handle(loop, conn):
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        chunk = await loop.sock_recv(conn, 65536)
        if not chunk:
            conn.close()
            return
        head += chunk
    size = int(head.split()[1].lstrip(b"/"))
    await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % size)
    while size > 0:
        size -= await loop.sock_sendfile(conn, data, 0, min(size, BLOCK))
    conn.close()
async def main():
    loop = asyncio.get_running_loop()
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)
    server.setblocking(False)
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = await loop.sock_accept(server)
        conn.setblocking(False)
        asyncio.ensure_future(handle(loop, conn))
asyncio.run(main())
"""
"""The upstream server: sends bodies with sendfile(2), as web servers do, so that its own cost stays small."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _head(loop: asyncio.AbstractEventLoop, sock: socket.socket, extra: bytes) -> bytes:
    """Read up to the end of a response head; returns what came after it."""
    data = extra
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    return data.partition(b"\r\n\r\n")[2]


async def fetch(port: int, size: int, via_proxy: bool, upstream: int) -> int:
    """One request on a new connection (through a CONNECT tunnel when ``via_proxy``); bytes of body received.

    Raw sockets and one reused buffer: the client should cost as little as it can,
    so that what is measured is the path, not the client.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        extra = b""
        if via_proxy:
            await loop.sock_sendall(sock, f"CONNECT upstream.test:{upstream} HTTP/1.1\r\n\r\n".encode())
            extra = await _head(loop, sock, b"")
        await loop.sock_sendall(sock, f"GET /{size} HTTP/1.1\r\n\r\n".encode())
        received = len(await _head(loop, sock, extra))
        buffer = bytearray(1 << 20)
        while count := await loop.sock_recv_into(sock, buffer):
            received += count
        return received
    finally:
        sock.close()


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
    parser.add_argument("--size-mb", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
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
                    "allow": [f"upstream.test:{upstream}"],
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
            report(args, port, upstream, {"client": os.getpid(), "gate": gate.pid, "upstream": upstream_proc.pid})
        finally:
            os.killpg(gate.pid, 15)  # the gate and its stand-in agent
            upstream_proc.terminate()
            gate.wait()
            upstream_proc.wait()


def report(args: argparse.Namespace, port: int, upstream: int, pids: dict[str, int]) -> None:
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
    cpu_rows = []
    for label, clients, pace in (
        ("small request, 1 client", 1, 0.0),
        ("small request, 50 back to back", 50, 0.0),
        ("small request, 50 at 20/s each", 50, 0.05),
    ):
        requests = args.requests if not pace else 50 * 20
        runs: dict[bool, list[tuple[float, dict[str, float]]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for via in (False, True):
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                result = asyncio.run(latency(port if via else upstream, via, upstream, clients, requests, pace))
                cpu = {name: (cpu_seconds(pid) - before[name]) / requests * 1e6 for name, pid in pids.items()}
                runs[via].append((result, cpu))
        d, g = (statistics.median(result for result, _ in runs[via]) for via in (False, True))
        rows.append((label, f"{d:8.2f} ms", f"{g:8.2f} ms", f"+{g - d:5.2f} ms median"))
        for via in (False, True):
            cpu = {name: statistics.median(c[name] for _, c in runs[via]) for name in pids}
            cpu_rows.append((f"{label}, {'through gate' if via else 'direct'}", cpu))
    print(f"{'':<34} {'direct':>12} {'through gate':>14}  ratio")
    for label, direct_text, gated_text, ratio in rows:
        print(f"{label:<34} {direct_text:>12} {gated_text:>14}  {ratio}")
    print(f"\nCPU per small request, us {'':<29} " + " ".join(f"{name:>8}" for name in pids) + "    total")
    for label, cpu in cpu_rows:
        print(f"{label:<56} " + " ".join(f"{cpu[name]:8.0f}" for name in pids) + f" {sum(cpu.values()):8.0f}")


if __name__ == "__main__":
    main()
