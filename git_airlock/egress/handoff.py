"""The first program inside a sandbox: hands its listener to the egress proxy, then becomes the agent.

``python3 handoff.py [PORT SOCKET] -- COMMAND...``: with PORT and SOCKET, binds
and listens on 127.0.0.1:PORT in the sandbox's own (empty) network namespace,
passes the listening socket to the proxy over its Unix socket (``SCM_RIGHTS``)
and waits until the proxy says it serves it. From then on the proxy on the host
accepts the sandbox's connections directly: nothing runs inside the sandbox to
relay them, so there is no extra hop to copy bytes through and nothing the
agent could kill to cut its own network. Clients see an ordinary
``HTTP_PROXY=http://127.0.0.1:PORT``.

Then it becomes COMMAND as a program started from a terminal expects to be:
with every signal at its default (the interpreters before it ignore some,
SIGPIPE among them, and an ignored signal outlives exec) and, on a terminal,
as the terminal's foreground job of its own. Without that job, Ctrl-C would
signal bwrap's process on the host as well, which dies of it and takes the
sandbox down before the agent has handled its SIGINT (bubblewrap issue 369).

Standard library only, and no newer than Python 3.3: it runs on the
sandbox's own Python, without git-airlock installed there.
"""

import array
import os
import signal
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


def take_the_terminal() -> None:
    """On a terminal whose foreground job this process is in: become a job of its own, in the foreground.

    The job it leaves holds the processes on the host that run the sandbox; a key that signals the
    foreground job (Ctrl-C, Ctrl-\\, Ctrl-Z) then reaches the agent alone."""
    try:
        if os.tcgetpgrp(0) != os.getpgrp():
            return  # no terminal, not ours, or in the background: nothing to take
        os.setpgid(0, 0)
        hold = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background job setting the foreground stops
        try:
            os.tcsetpgrp(0, os.getpgrp())
        finally:
            signal.signal(signal.SIGTTOU, hold)
    except OSError:
        pass


def default_signals() -> None:
    """Every signal handled as the kernel does by default, and none blocked."""
    for number in range(1, signal.NSIG):
        try:
            if signal.getsignal(number) == signal.SIG_IGN:
                signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP and the C library's own
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def main(argv: "list[str]") -> int:  # quoted: the sandbox's Python may predate list[str]
    gated = len(argv) > 3 and argv[2] == "--"
    if not (gated or (len(argv) > 1 and argv[0] == "--")):
        print("usage: handoff.py [PORT SOCKET] -- COMMAND...", file=sys.stderr)
        return 2
    command = argv[3:] if gated else argv[1:]
    if gated:
        try:
            served = listen_and_hand_off(int(argv[0]), argv[1])
        except OSError as exc:
            print("git-airlock: cannot start the sandbox's network: " + str(exc), file=sys.stderr)
            return 1
        if not served:
            print("git-airlock: the egress proxy refused the sandbox's network socket", file=sys.stderr)
            return 1
    take_the_terminal()
    default_signals()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print("git-airlock: cannot run " + command[0] + ": " + str(exc.strerror), file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
