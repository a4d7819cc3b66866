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


def session_exists(runner: Runner, session: str) -> bool:
    if not available():
        return False
    result = runner.query(Step(("tmux", "has-session", "-t", target(session))))
    return bool(result and result.returncode == 0)


def attached_clients(runner: Runner, session: str) -> int | None:
    """How many clients are attached, or None when the session does not exist."""
    result = runner.query(Step(("tmux", "display-message", "-p", "-t", target(session) + ":", "#{session_attached}")))
    if not result or result.returncode != 0:
        return None
    try:
        return int(result.stdout.strip() or 0)
    except ValueError:
        return None


def new_session_step(session: str, cwd: str, argv: list[str]) -> Step:
    """Start ``argv`` directly (no shell) in a new detached session."""
    return Step(("tmux", "new-session", "-d", "-s", session, "-c", cwd, "--", *argv))


def attach_step(session: str) -> Step:
    """Attach from a plain terminal, or switch the current client when already inside tmux."""
    if os.environ.get("TMUX"):
        return Step(("tmux", "switch-client", "-t", target(session)), interactive=True)
    return Step(("tmux", "attach-session", "-t", target(session)), interactive=True)


def kill_step(session: str) -> Step:
    return Step(("tmux", "kill-session", "-t", target(session)))
