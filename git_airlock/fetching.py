"""Bringing a sandbox's branches home: the one path every command takes to read the sandbox's commits.

Every fetch runs git with the settings below, through the engine's sandboxed ``upload-pack`` where it
has one, into ``refs/remotes/sandbox-<name>/*`` only: objects are checked, nothing of the sandbox's
runs here, and no branch or tag of yours is written.
"""

from __future__ import annotations

import os
import sys

from git_airlock.app import App
from git_airlock.engines.base import SandboxState
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import SAFE, Git
from git_airlock.plan import Step
from git_airlock.terminal import is_terminal

# On top of gitcmd.SAFE (no hooks, no fsmonitor): objects checked, only the
# transports our engines use, no submodule recursion, so nothing from the
# sandbox's side runs on the host while git reads sandbox objects.
FETCH_SAFETY: tuple[str, ...] = (
    "fetch.fsckObjects=true",
    "transfer.fsckObjects=true",
    "protocol.allow=never",
    "protocol.git.allow=always",
    "protocol.file.allow=always",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
)


def safe_git(*args: str) -> list[str]:
    """git with the plumbing safety settings (no hooks, no fsmonitor) plus the fetch ones."""
    argv = ["git", *SAFE]
    for setting in FETCH_SAFETY:
        argv += ["-c", setting]
    return [*argv, *args]


def fetch_steps(app: App, url: str | None) -> list[Step]:
    """The git commands that bring the sandbox's branches (and, from ``url``, initialised submodules) home.

    Where the engine serves the clone through a command of its own (a sandboxed ``git upload-pack``),
    every fetch from it uses that command: nothing in the clone is read with the user's authority.
    """
    from git_airlock.naming import fetch_refspecs

    steps = [
        refs_step(
            app,
            fetch_refspecs(app.sandbox),
            hint="the sandbox's objects failed git's checks or it is unreachable; "
            "nothing was written to your branches. `git airlock status` shows its state",
        )
    ]
    if url and app.settings.flag("fetch_submodules"):
        for name, gitdir in _initialised_submodules(app):
            steps.append(
                Step(
                    tuple(
                        safe_git(
                            f"--git-dir={gitdir}",
                            "fetch",
                            "--no-tags",
                            "--no-write-fetch-head",
                            *_transport(app),
                            f"{url.rstrip('/')}/.git/modules/{name}",
                            f"+refs/heads/*:refs/remotes/{app.remote}/*",
                        )
                    ),
                    check=False,
                )
            )
    return steps


def refs_step(app: App, refspecs: tuple[str, ...] | list[str], hint: str) -> Step:
    """``git fetch`` of ``refspecs`` from the sandbox's remote, with every safety setting and through the
    engine's sandboxed ``upload-pack`` where it has one."""
    fetch = ("fetch", "--no-tags", "--no-write-fetch-head", *_transport(app), app.remote, *refspecs)
    return Step(tuple(safe_git("-C", app.location.root, *fetch)), hint=hint)


def _transport(app: App) -> tuple[str, ...]:
    """Progress on a terminal, and the engine's sandboxed ``upload-pack`` where it serves the clone itself."""
    progress = "--progress" if is_terminal(sys.stderr) else "--quiet"
    upload_pack = app.engine.upload_pack(app.sandbox)
    return (progress, "--upload-pack", upload_pack) if upload_pack else (progress,)


def remote_url(app: App) -> str | None:
    return Git(app.location.root).config(f"remote.{app.remote}.url")


def _initialised_submodules(app: App) -> list[tuple[str, str]]:
    """Submodules the host has initialised (their git dirs exist under .git/modules)."""
    from git_airlock.process import run

    gitmodules = os.path.join(app.location.root, ".gitmodules")
    if not os.path.exists(gitmodules):
        return []
    proc = run(
        ["git", "config", "--file", gitmodules, "--name-only", "--get-regexp", r"^submodule\..*\.path$"],
        check=False,
    )
    found = []
    for key in proc.stdout.splitlines():
        name = key[len("submodule.") : -len(".path")]
        gitdir = os.path.join(app.location.common_dir, "modules", name)
        if ".." not in name.split("/") and os.path.isdir(gitdir):
            found.append((name, gitdir))
    return found


def fetch(app: App, state: SandboxState | None = None, known: bool = False) -> None:
    """Start the sandbox if it is stopped, then fetch; refuse clearly when there is nothing to fetch.

    ``known`` says ``state`` was already looked up by the caller (saving an ``sbx ls``).
    """
    with app.locked("fetch"):
        _fetch(app, state, known)


def _fetch(app: App, state: SandboxState | None, known: bool) -> None:
    if not known:
        state = app.sandbox_state()
    if app.dry_run:
        app.runner.execute(app.engine.fetch_plan(app.sandbox, running=False))
        for step in fetch_steps(app, remote_url(app)):
            app.runner.show(step)
        return
    if state is None:
        if app.repo.refs_under(f"refs/remotes/{app.remote}/"):
            app.info(f"warning: sandbox {app.sandbox!r} is gone; using the commits fetched before")
            return
        raise AirlockError(
            f"no sandbox named {app.sandbox!r}, and nothing fetched from it before",
            hint="start one with `git airlock up` (or pick another with --name)",
        )
    prepare = app.engine.fetch_plan(app.sandbox, state.running)
    note = app.engine.fetch_note(state.running)
    if note:
        app.info(f"{app.sandbox}: {note}")
    app.runner.execute(prepare)
    url = remote_url(app)
    if url is None:
        raise AirlockError(
            f"the remote {app.remote!r} is missing from this repository",
            hint="it is written by the sandbox engine at start; `git airlock stop` then "
            "`git airlock shell` restarts the sandbox",
        )
    steps = fetch_steps(app, url)
    app.runner.run(steps[0])
    _ensure_base(app)
    warn_uncommitted(app)
    for step in steps[1:]:
        result = app.runner.run(step)
        if result.returncode != 0:
            app.info(f"warning: could not fetch submodule {step.argv[-2]}: {result.stderr.strip()}")


def warn_uncommitted(app: App) -> None:
    """Work the agent has not committed is not in any fetch: say so rather than lose it silently."""
    changed = app.engine.uncommitted(app.sandbox)
    if changed:
        from git_airlock.terminal import sanitize_line

        shown = ", ".join(sanitize_line(path) for path in changed[:5]) + (" ..." if len(changed) > 5 else "")
        app.info(f"warning: the sandbox has {len(changed)} uncommitted change(s) that a fetch does not bring: {shown}")
        app.info("hint: `git airlock save` keeps them on the host without stopping the agent")


def _ensure_base(app: App) -> None:
    """A sandbox started without git-airlock has no recorded base: use where it forked from HEAD."""
    from git_airlock.gitcmd import Git
    from git_airlock.review import ledger

    git = Git(app.location.root)
    if git.refs(f"{ledger.BASE}{app.sandbox}"):
        return  # the usual case, answered without pygit2 (a fetch needs it nowhere else)
    tips = git.refs(f"refs/remotes/{app.remote}/")
    if not tips:
        return
    branch = git.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
    tip = tips.get(f"refs/remotes/{app.remote}/{branch}") or next(iter(tips.values()))
    head = git.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() or None
    ledger.ensure_base(git, app.sandbox, tip, head)
