"""Runs inside a sandbox that has no network: relays 127.0.0.1:PORT to the egress proxy's Unix socket.

``python3 relay.py PORT SOCKET -- COMMAND...``: a forked child serves the
relay (it dies with the sandbox's PID namespace), the parent waits until the
relay listens and then becomes COMMAND, so clients see an ordinary
``HTTP_PROXY=http://127.0.0.1:PORT``. Standard library only: it runs on the
sandbox's own Python, without git-airlock installed there.
"""

import asyncio
import os
import sys

CHUNK = 1 << 20


async def _pipe(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


async def _serve(port, socket_path, ready_fd):
    running = set()  # asyncio keeps only weak references to tasks; a relayed connection must not vanish

    async def handle(reader, writer):
        task = asyncio.current_task()
        running.add(task)
        try:
            await relay(reader, writer)
        finally:
            running.discard(task)

    async def relay(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(socket_path, limit=CHUNK)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        up_writer.close()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=CHUNK)
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    async with server:
        await server.serve_forever()


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        print("usage: relay.py PORT SOCKET -- COMMAND...", file=sys.stderr)
        return 2
    port, socket_path, command = int(argv[0]), argv[1], argv[3:]
    ready_read, ready_write = os.pipe()
    if os.fork() == 0:
        os.close(ready_read)
        try:
            asyncio.run(_serve(port, socket_path, ready_write))
        finally:
            os._exit(0)
    os.close(ready_write)
    if os.read(ready_read, 1) != b"1":
        print("git-airlock: the network relay did not start", file=sys.stderr)
        return 1
    os.close(ready_read)
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
