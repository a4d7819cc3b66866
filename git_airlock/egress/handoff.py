"""Runs inside a sandbox that has no network: opens 127.0.0.1:PORT and hands it to the egress proxy.

``python3 handoff.py PORT SOCKET -- COMMAND...``: binds and listens on
127.0.0.1:PORT in the sandbox's own (empty) network namespace, passes the
listening socket to the proxy over its Unix socket (``SCM_RIGHTS``), waits
until the proxy says it serves it, then becomes COMMAND. From then on the
proxy on the host accepts the sandbox's connections directly: nothing runs
inside the sandbox to relay them, so there is no extra hop to copy bytes
through and nothing the agent could kill to cut its own network. Clients
see an ordinary ``HTTP_PROXY=http://127.0.0.1:PORT``.

Standard library only, and no newer than Python 3.3: it runs on the
sandbox's own Python, without git-airlock installed there.
"""

import array
import os
import socket
import sys


def hand_off(fd: int, socket_path: str) -> bool:
    """Give descriptor ``fd`` to the proxy at ``socket_path``; True once the proxy serves it."""
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        control.connect(socket_path)
        fds = array.array("i", [fd])
        control.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        control.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            chunk = control.recv(64)
            if not chunk:
                break
            answer += chunk
        return answer.startswith(b"serving")
    finally:
        control.close()


def listen_and_hand_off(port: int, socket_path: str) -> bool:
    """Listen on 127.0.0.1:PORT and give the socket to the proxy (the sandbox keeps no copy)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(512)
        return hand_off(listener.fileno(), socket_path)
    finally:
        listener.close()


def main(argv: "list[str]") -> int:  # quoted: the sandbox's Python may predate list[str]
    if len(argv) < 4 or argv[2] != "--":
        print("usage: handoff.py PORT SOCKET -- COMMAND...", file=sys.stderr)
        return 2
    port, socket_path, command = int(argv[0]), argv[1], argv[3:]
    try:
        served = listen_and_hand_off(port, socket_path)
    except OSError as exc:
        print("git-airlock: cannot start the sandbox's network: " + str(exc), file=sys.stderr)
        return 1
    if not served:
        print("git-airlock: the egress proxy refused the sandbox's network socket", file=sys.stderr)
        return 1
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
