"""Host tmux sessions that hold an agent's terminal, so it survives a closed window."""

from __future__ import annotations

import os
import shutil

from git_airlock.plan import Runner, Step


def target(session: str) -> str:
    """An exact-match tmux target ('=' stops tmux from matching a prefix of another session)."""
    return f"={session}"


def available() -> bool:
    return shutil.which("tmux") is not None


def sessions(runner: Runner) -> set[str]:
    """The names of the tmux sessions running now (none without tmux or a server)."""
    if not available():
        return set()
    result = runner.query(Step(("tmux", "list-sessions", "-F", "#{session_name}")))
    return set(result.stdout.split()) if result and result.returncode == 0 else set()


def session_exists(runner: Runner, session: str) -> bool:
    if not available():
        return False
    result = runner.query(Step(("tmux", "has-session", "-t", target(session))))
    return bool(result and result.returncode == 0)


def attached_clients(runner: Runner, session: str) -> int | None:
    """How many clients are attached, or None when the session does not exist.

    Read from the list of sessions by exact name: ``display-message -t`` answers for some
    other session when the one named does not exist."""
    result = runner.query(Step(("tmux", "list-sessions", "-F", "#{session_attached} #{session_name}")))
    if not result or result.returncode != 0:
        return None
    for line in result.stdout.splitlines():
        count, _, name = line.partition(" ")
        if name == session and count.isdigit():
            return int(count)
    return None


AFTERWARDS = (
    'trap : INT; "$@"; status=$?; '
    'printf "\\n[git-airlock] the agent exited with status %s. Next: git airlock diff, then git airlock review.\\n" '
    '"$status"; printf "[git-airlock] press Enter to close this window.\\n"; read _; exit "$status"'
)
"""Runs in the session around the agent: when it exits, the window stays and says how it ended and what
comes next, rather than vanishing. ``trap :`` keeps this shell through a Ctrl-C meant for the agent (a
handler, unlike an ignored signal, is not inherited across exec). The agent's argv is passed as
positional parameters: nothing is interpolated into the line."""


def new_session_step(session: str, cwd: str, argv: list[str]) -> Step:
    """Start ``argv`` in a new detached session, its window kept until the user has read how it ended."""
    return Step(("tmux", "new-session", "-d", "-s", session, "-c", cwd, "--", "sh", "-c", AFTERWARDS, "agent", *argv))


def attach_step(session: str) -> Step:
    """Attach from a plain terminal, or switch the current client when already inside tmux."""
    if os.environ.get("TMUX"):
        return Step(("tmux", "switch-client", "-t", target(session)), interactive=True)
    return Step(("tmux", "attach-session", "-t", target(session)), interactive=True)


def kill_step(session: str) -> Step:
    return Step(("tmux", "kill-session", "-t", target(session)))
