"""Sandbox lifecycle: up, run, attach, shell, stop, rm."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import click

from git_airlock import capture, fetching, sandboxes
from git_airlock.agents import Agent, get_agent
from git_airlock.app import App
from git_airlock.commands import app_of, pass_app
from git_airlock.commands._shared import confirm
from git_airlock.commands.agentargs import AgentCommand, agent_args
from git_airlock.engines.base import DID_NOT_START, SandboxSpec
from git_airlock.errors import AirlockError, UsageError
from git_airlock.gitcmd import Git
from git_airlock.locks import forget
from git_airlock.plan import Plan, Step
from git_airlock.review import ledger
from git_airlock.terminal import is_terminal


def _ensure_repo(app: App, assume_yes: bool) -> None:
    """Offer ``git init`` when the directory is not a repository yet, with a first commit of the files
    already there (the sandbox clones commits: without one, the agent would start from an empty tree)."""
    if app.location_or_none is not None:
        return
    path = os.path.abspath(app.cwd)
    files = [entry for entry in os.listdir(path) if entry != ".git"]
    steps = [Step(("git", "init", "--quiet", path))]
    if files:
        steps += [
            Step(("git", "-C", path, "add", "--all")),
            Step(("git", "-C", path, "commit", "--quiet", "--no-verify", "-m", "Initial commit")),
        ]
    if app.dry_run:
        app.runner.execute(Plan(list(steps)))
        return
    also = f" and commit its {len(files)} file(s) as a first commit" if files else ""
    question = f"{path} is not a git repository. Run `git init` here{also}?"
    if not confirm(question, default=False, assume=True if assume_yes else None):
        raise AirlockError(
            f"not a git repository: {path}",
            hint="run `git init` (or `git airlock up --yes` to do it for you); the sandbox clones a repository",
        )
    if files and Git(path, safe=False).run("var", "GIT_COMMITTER_IDENT", check=False) == "":
        raise AirlockError(
            "git does not know who you are (user.name / user.email), so it cannot make the first commit",
            hint='git config --global user.name "Your Name"; git config --global user.email you@example.com',
        )
    app.runner.execute(Plan(list(steps)))
    app.__dict__.pop("location_or_none", None)
    app.__dict__.pop("settings", None)


def _start(app: App, agent: Agent, agent_args: list[str], assume_yes: bool, operation: str) -> int | None:
    """Everything ``up`` and ``run`` share; the agent's exit status when it ran in the foreground."""
    _ensure_repo(app, assume_yes)
    location = app.location_or_none
    root = location.root if location else os.path.abspath(app.cwd)
    if location and location.is_linked_worktree:
        raise AirlockError(
            "clone mode needs the main worktree of the repository, not a linked worktree",
            hint=f"run it from the main worktree: git -C {location.main_root} airlock up",
        )
    sandbox = app.sandbox if location else _dry_run_name(root)
    app.tmux = app.tmux or app.settings.flag("use_tmux")
    with app.locked(operation, sandbox) as release:
        return _launch(app, agent, agent_args, sandbox, root, release)


def _launch(
    app: App, agent: Agent, agent_args: list[str], sandbox: str, root: str, release: Callable[[], None]
) -> int | None:
    """Start the sandbox, holding its lock until the agent runs (``release`` gives it back)."""
    location = app.location_or_none
    engine = app.engine
    state = app.sandbox_state() if location else None
    if state is not None and state.running:
        raise AirlockError(
            f"sandbox {sandbox!r} already exists (running)",
            hint="`git airlock attach` or `git airlock shell` to use it, `git airlock rm` to start over",
        )
    if state is not None:
        app.info(f"sandbox {sandbox} exists and is stopped: starting it again")
    if app.tmux and not app.dry_run:
        from git_airlock import tmux

        if not tmux.available():
            raise AirlockError("tmux is not installed", hint="install tmux, or run without --tmux")
        if tmux.session_exists(app.runner, app.tmux_session):
            raise AirlockError(
                f"tmux session {app.tmux_session!r} already exists",
                hint="`git airlock attach`, or set TMUX_SESSION to another name",
            )

    app.runner.execute(engine.policy_init_plan(app.settings.network_policy))
    for risk in engine.push_risks(app.runner, sandbox):
        app.info(f"warning: {risk}")
    if not os.path.exists(os.path.join(root, "AGENTS.md")):
        app.info("note: this repository has no AGENTS.md; `git airlock init` writes a starter one")
    app.info(f"sandbox: {sandbox} (agent: {agent.name}, engine: {engine.name})")
    if agent.credentials:
        app.info(f"auth: {engine.auth_note(agent, dict(app.settings.service_url_pairs))}")

    seeds = []
    agent_files = app.seed_config or app.settings.flag("seed_config")
    if agent_files or app.settings.seed_path_list:
        from git_airlock.seeding import seed_files

        home = os.path.expanduser("~")
        seeds = seed_files(agent, home, engine.sandbox_home(), app.settings.seed_path_list, agent_files)
        app.info(f"seeding {len(seeds)} instruction file(s) from your home directory")

    spec = SandboxSpec(
        sandbox,
        agent,
        root,
        location.common_dir if location else os.path.join(root, ".git"),
        app.settings.network_policy,
        app.settings.pass_env_names,
        app.settings.resolve_pairs,
        app.settings.service_url_pairs,
        tuple(host for hosts in app.settings.presets.values() for host in hosts),
        app.settings.tmp_size_bytes,
        app.dry_run,
        keep_agent_state=app.settings.flag("keep_agent_state"),
    )
    if spec.keep_agent_state and state is None and not engine.keeps_agent_state:
        app.info(f"note: the {engine.name} engine keeps no agent state across sandboxes (airlock.keepAgentState)")
    setup, agent_step = engine.launch(spec, agent_args, seeds, exists=state is not None)
    if state is not None:
        for note in engine.start_notes(sandbox):
            app.info(f"note: {note}")
    new = state is None and location is not None
    try:
        if new:
            sandboxes.start_ledger(app, sandbox, root, agent.name)
        if app.tmux:
            _start_in_tmux(app, root, setup, agent_step)
            return None
        app.runner.execute(setup)
    except BaseException:
        if new and not app.dry_run:  # all or nothing: a sandbox that could not be made leaves nothing behind
            sandboxes.discard(app, sandbox, root)
        raise
    if app.dry_run:
        app.runner.show(agent_step)
        return None
    started = time.time()
    status = app.runner.run(agent_step, started=release).returncode
    for problem in engine.run_problems(sandbox, started):
        app.info(f"note: {problem}")
    return status


def _dry_run_name(root: str) -> str:
    from git_airlock.naming import default_sandbox_name

    return default_sandbox_name(os.path.realpath(root))


def _start_in_tmux(app: App, root: str, setup: Plan, agent_step: Step) -> None:
    from git_airlock import tmux

    setup.steps.append(tmux.new_session_step(app.tmux_session, root, list(agent_step.argv)))
    app.runner.execute(setup)
    attach = not app.tmux_detached and app.settings.flag("tmux_attach")
    if attach and (app.dry_run or is_terminal(sys.stdin)):
        app.runner.execute(Plan([tmux.attach_step(app.tmux_session)]))
    else:
        app.info(f"agent running in tmux session {app.tmux_session!r}; `git airlock attach` to watch it")


@click.command("up", cls=AgentCommand)
@click.option("-y", "--yes", is_flag=True, help="Answer yes to questions (e.g. `git init` a new folder).")
@click.pass_context
def up_command(ctx: click.Context, yes: bool) -> None:
    """Create the sandbox in clone mode and start the agent.

    Only arguments after `--` go to the agent, unchanged, e.g.
    `git airlock up -- --model opus`.
    """
    app = app_of(ctx)
    agent = get_agent(app.settings.agent)
    if _start(app, agent, agent_args(ctx), yes, "up") == DID_NOT_START:
        ctx.exit(DID_NOT_START)  # the sandbox said why; the agent's own exit status is not up's


@click.command("run", cls=AgentCommand)
@click.option("-y", "--yes", is_flag=True, help="Answer yes to questions.")
@click.argument("task")
@click.pass_context
def run_command(ctx: click.Context, yes: bool, task: str) -> int:
    """Run the agent headless on TASK, then say what it did; exits with the agent's exit status.

    Each agent gets its own headless form (see `git airlock presets`); agents
    without one get TASK as a plain argument. In the foreground, the sandbox's
    branches are fetched afterwards and the new commits counted.
    """
    app = app_of(ctx)
    if not task.strip():
        raise UsageError(
            "the task is empty", hint='say what the agent should do: `git airlock run "fix the failing test"`'
        )
    agent = get_agent(app.settings.agent)
    args, guessed = agent.headless_args(task)
    if guessed:
        app.info(f"warning: {agent.name} has no known headless mode; passing the task as a plain argument")
    before = _sandbox_tips(app)
    status = _start(app, agent, [*args, *agent_args(ctx)], yes, "run")
    if status is None:
        if not app.dry_run:
            app.info("when the agent is done: `git airlock diff` to see its work, `git airlock review` to review it")
        return 0
    _report_run(app, agent.name, status, before)
    return status


def _sandbox_tips(app: App) -> list[str]:
    """The sandbox branches' commits as of the last fetch (what a run's new commits are counted from)."""
    if app.dry_run or app.location_or_none is None:
        return []
    return list(Git(app.location.root).refs(f"refs/remotes/{app.remote}/").values())


def _report_run(app: App, agent: str, status: int, before: list[str]) -> None:
    """Fetch what the agent committed and say how the run ended; no commit at all deserves a warning."""
    try:
        fetching.fetch(app)
    except AirlockError as exc:
        app.info(f"warning: could not fetch the sandbox's commits: {exc.message}")
        return
    git = Git(app.location.root)
    after = list(git.refs(f"refs/remotes/{app.remote}/").values())
    base = git.refs(f"{ledger.BASE}{app.sandbox}")
    exclude = [*before, *base.values()]
    count = int(git.run("rev-list", "--count", *after, "--not", *exclude).strip() or 0) if after else 0
    ended = "finished" if status == 0 else f"exited with status {status}"
    if count == 0:
        app.info(f"warning: {agent} {ended} and made no commit; `git airlock status` shows uncommitted work")
        return
    app.info(f"{agent} {ended} and made {count} new commit(s): `git airlock diff` to see them, `git airlock review`")


@click.command("attach")
@pass_app
def attach_command(app: App) -> None:
    """Attach to the sandbox's tmux session (switch to it when already inside tmux)."""
    from git_airlock import tmux

    if not app.dry_run and not tmux.session_exists(app.runner, app.tmux_session):
        raise AirlockError(
            f"no tmux session {app.tmux_session!r}", hint="start the agent in one with `git airlock --tmux up`"
        )
    app.runner.execute(Plan([tmux.attach_step(app.tmux_session)]))


@click.command("shell")
@pass_app
def shell_command(app: App) -> None:
    """Open an interactive shell inside the sandbox (starting it if stopped)."""
    app.require_sandbox()
    ended = app.runner.execute(app.engine.shell_plan(app.sandbox))
    if ended is not None and ended.returncode == DID_NOT_START:
        click.get_current_context().exit(DID_NOT_START)  # the sandbox said why


@click.command("stop")
@pass_app
def stop_command(app: App) -> None:
    """Stop the sandbox; its VM, clone and commits are kept."""
    with app.locked("stop"):
        _stop(app)


def _stop(app: App) -> None:
    state = app.require_sandbox()
    if state is not None and not state.running:
        app.info(f"sandbox {app.sandbox} is already stopped")
        return
    app.runner.execute(app.engine.stop_plan(app.sandbox))
    if not app.dry_run:
        app.info(f"stopped {app.sandbox}; `git airlock fetch` or `git airlock up` starts it again")


@click.command("rm")
@click.option(
    "--fetch/--no-fetch",
    "do_fetch",
    default=None,
    help="Fetch the sandbox's commits first (default: ask; yes without a terminal).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Remove even if the fetch fails or the uncommitted work cannot be kept (what is lost is listed).",
)
@click.option("--include-ignored", is_flag=True, help="Keep also the files the clone's .gitignore leaves out.")
@pass_app
def rm_command(app: App, do_fetch: bool | None, yes: bool, force: bool, include_ignored: bool) -> None:
    """Remove the sandbox and its tmux session, after offering to fetch its commits.

    Before the sandbox goes, the work a fetch does not bring is kept (`git airlock save`): files
    the agent never committed, its stashes, a detached HEAD and other refs, under
    refs/airlock/wip/<sandbox>/<time>/. If that cannot be done, or a file is too large to keep,
    nothing is removed unless you pass --force.
    """
    with app.locked("rm"):
        _remove(app, do_fetch, yes, force, include_ignored)


def _remove(app: App, do_fetch: bool | None, yes: bool, force: bool, include_ignored: bool) -> None:
    from git_airlock import tmux

    state = app.require_sandbox()
    if do_fetch is None:
        do_fetch = confirm(f"Fetch the commits of {app.sandbox} before removing it?", default=True)
    fetched = False
    if do_fetch:
        try:
            fetching.fetch(app, state, known=True)
            fetched = True
        except AirlockError as exc:
            app.info(f"error: the fetch failed: {exc.message}")
            keep_going = force or (
                is_terminal(sys.stdin)
                and click.confirm(
                    "Remove the sandbox anyway? Commits not fetched will be lost", default=False, err=True
                )
            )
            if not keep_going:
                raise AirlockError(
                    "nothing was removed because the fetch failed",
                    hint="fix the fetch, or pass --force to remove anyway",
                ) from exc
    else:
        app.info("warning: not fetching; commits the sandbox made since the last fetch will be lost")
    if not confirm(f"Remove sandbox {app.sandbox}?", default=False, assume=True if yes or app.dry_run else None):
        raise AirlockError("nothing was removed", hint="pass --yes to remove without a question")
    if state is not None and state.running:  # an agent still at work would write past the snapshot
        app.runner.execute(app.engine.stop_plan(app.sandbox))
    capture.keep_before_removal(app, force, include_ignored)
    plan = app.engine.remove_plan(app.sandbox, app.location.main_root)
    if app.dry_run or tmux.session_exists(app.runner, app.tmux_session):
        plan.steps.append(tmux.kill_step(app.tmux_session))
    app.runner.execute(plan)
    if not app.dry_run:
        forget(app.sandbox)
        app.info(f"removed {app.sandbox}; {_what_stays(app, fetched)}")


def _what_stays(app: App, fetched: bool) -> str:
    """Where the sandbox's commits can still be found: claimed only when something was fetched."""
    kept = f"refs/sandboxes/{app.sandbox}/"
    if fetched:
        return f"fetched commits stay reachable at {kept}*"
    if Git(app.location.main_root).run("for-each-ref", "--count=1", kept).strip():
        return f"commits fetched before stay reachable at {kept}*; nothing was fetched this time"
    return "nothing was fetched from it"


@click.command("commit")
@click.option("-m", "--message", required=True, help="Commit message.")
@pass_app
def commit_command(app: App, message: str) -> None:
    """Commit the work the agent left uncommitted in its clone, from the host side.

    Runs without your git configuration, hooks or filters (the clone's content
    is the agent's). Only for engines whose clone is on this machine (bwrap);
    with sbx, use `git airlock shell` and commit inside.
    """
    with app.locked("commit"):
        app.require_sandbox()
        plan = app.engine.commit_plan(app.sandbox, message)
        if not app.dry_run and not app.engine.uncommitted(app.sandbox):
            app.info("nothing to commit: the sandbox's working tree is clean")
            return
        app.runner.execute(plan)
    if not app.dry_run:
        app.info("committed in the sandbox's clone; `git airlock fetch` brings it home")
