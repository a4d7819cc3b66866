"""The host-side records of a sandbox's life: where its commits start in the review ledger, and
taking a half-made sandbox apart again.

``up`` and ``run`` call these around the engine's own work, so that a new sandbox either exists
whole (engine state, remote, ledger base) or not at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from git_airlock.app import App
from git_airlock.gitcmd import Git
from git_airlock.plan import Call, Step
from git_airlock.review import ledger


def start_ledger(app: App, sandbox: str, root: str, agent: str) -> None:
    """A new sandbox's place in the review ledger: what an earlier sandbox of its name left moves aside,
    the commit it starts from is its base (its commits are those after it), and the agent it runs, its
    engine, network policy and presets are remembered (the pre-push hook names the agent; the review report
    says what changed in the settings since)."""
    base = Step(("git", "-C", root, "update-ref", "-m", "git-airlock: sandbox base", f"{ledger.BASE}{sandbox}", "HEAD"))
    settings = app.settings
    started = {
        "agent": agent,
        "engine": app.engine.name,
        "policy": settings.network_policy,
        "presets": settings.values["presets"],
    }
    remember = [Step(("git", "-C", root, "config", ledger.started_key(sandbox, k), v)) for k, v in started.items()]
    if app.dry_run:
        app.runner.show(f"move refs an earlier sandbox named {sandbox} left to refs/sandboxes/{sandbox}@<time>/")
        app.runner.show(base)
        for step in remember:
            app.runner.show(step)
        return
    git = Git(root)
    earlier_agent = ledger.started(git).get(sandbox, {}).get("agent")
    retired = ledger.retire(git, sandbox, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if retired and earlier_agent:  # the archive keeps naming the agent that made it
        git.run("config", ledger.started_key(retired, "agent"), earlier_agent)
    if retired:
        app.info(
            f"note: an earlier sandbox named {sandbox} left commits; they are kept as {retired} "
            f"(refs/sandboxes/{retired}/*, listed by `git airlock log --all-sandboxes`)"
        )
    if has_commits(root):
        app.runner.run(base)
    for step in remember:
        app.runner.run(step)


def discard(app: App, sandbox: str, root: str) -> None:
    """Remove whatever a failed ``up`` made of a new sandbox, each part on its own (the failure may have
    happened before any of them existed), then its ledger base."""
    try:
        steps = app.engine.remove_plan(sandbox, root).steps
    except Exception:  # nothing of it was recorded yet
        steps = []
    for step in steps:
        with contextlib.suppress(Exception):
            if isinstance(step, Step):
                app.runner.run(dataclasses.replace(step, check=False))
            elif isinstance(step, Call):
                step.action()
    Git(root).run("update-ref", "-d", f"{ledger.BASE}{sandbox}", check=False)
    Git(root).run("config", "--remove-section", f"{ledger.STARTED}{sandbox}", check=False)


def has_commits(root: str) -> bool:
    return bool(Git(root).run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip())
