"""``status``: one screen that says where everything stands, without fetching."""

from __future__ import annotations

import click

from git_airlock import tmux
from git_airlock.app import App
from git_airlock.commands._shared import sandbox_state
from git_airlock.terminal import sanitize

pass_app = click.make_pass_decorator(App)


@click.command("status")
@pass_app
def status_command(app: App) -> None:
    """Show the sandbox, its tmux session, its remote and its new commits.

    Counts come from the last fetch; run `git airlock fetch` to update them.
    """
    state = sandbox_state(app)
    if app.dry_run:
        app.runner.show(f"in-process (libgit2): count commits on refs/remotes/{app.remote}/* not in the base")
        return
    status = "absent" if state is None else ("running" if state.running else "exists but stopped")
    engine, why = app.engine_choice
    click.echo(f"sandbox:  {app.sandbox} ({status})")
    click.echo(f"engine:   {engine} ({why})")
    if state is not None and state.detail:
        click.echo(f"          {state.detail}")
    uncommitted = getattr(app.engine, "uncommitted", None)
    changed = uncommitted(app.sandbox) if uncommitted and state is not None else []
    if changed:
        click.echo(f"worktree: {len(changed)} uncommitted change(s) in the sandbox (`git airlock commit -m ...`)")
    clients = tmux.attached_clients(app.runner, app.tmux_session) if tmux.available() else None
    if clients is None:
        click.echo(f"tmux:     {app.tmux_session} (no session)")
    else:
        click.echo(f"tmux:     {app.tmux_session} ({clients} attached client(s))")
    url = app.repo.remote_url(app.remote)
    click.echo(f"remote:   {app.remote} -> {sanitize(url)}" if url else f"remote:   {app.remote} (not registered)")

    base = app.repo.current_branch()
    base_id = app.repo.ref_commit(f"refs/heads/{base}") if base else None
    branches = app.repo.refs_under(f"refs/remotes/{app.remote}/")
    if not branches:
        click.echo("commits:  nothing fetched yet (`git airlock fetch`)")
        return
    for ref, tip in sorted(branches.items()):
        name = sanitize(ref.removeprefix("refs/remotes/"))
        if base_id is None:
            click.echo(f"commits:  {name} at {tip[:10]}")
            continue
        ahead, _ = app.repo.ahead_behind(tip, base_id)
        click.echo(f"commits:  {name}: {ahead} commit(s) not in {base}")
