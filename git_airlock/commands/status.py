"""``status``: one screen that says where everything stands, without fetching.

It runs often, so it asks git with plumbing calls instead of loading pygit2.
"""

from __future__ import annotations

import click

from git_airlock import tmux
from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.gitcmd import Git
from git_airlock.terminal import sanitize


@click.command("status")
@pass_app
def status_command(app: App) -> None:
    """Show the sandbox, its engine, tmux session, remote and new commits.

    Counts come from the last fetch; run `git airlock fetch` to update them.
    """
    state = app.sandbox_state()
    if app.dry_run:
        app.runner.show(f"git rev-list --count for each refs/remotes/{app.remote}/* not in the base")
        return
    status = "absent" if state is None else ("running" if state.running else "exists but stopped")
    engine, why = app.engine_choice
    click.echo(f"sandbox:  {app.sandbox} ({status})")
    click.echo(f"engine:   {engine} ({why})")
    if state is not None and state.detail:
        click.echo(f"          {sanitize(state.detail)}")
    changed = app.engine.uncommitted(app.sandbox) if state is not None else []
    if changed:
        click.echo(f"worktree: {len(changed)} uncommitted change(s) in the sandbox (`git airlock commit -m ...`)")
    clients = tmux.attached_clients(app.runner, app.tmux_session) if tmux.available() else None
    if clients is None:
        click.echo(f"tmux:     {app.tmux_session} (no session)")
    else:
        click.echo(f"tmux:     {app.tmux_session} ({clients} attached client(s))")
    git = Git(app.location.root)
    url = git.config(f"remote.{app.remote}.url")
    click.echo(f"remote:   {app.remote} -> {sanitize(url)}" if url else f"remote:   {app.remote} (not registered)")

    branches = git.refs(f"refs/remotes/{app.remote}/")
    branches.pop(f"refs/remotes/{app.remote}/HEAD", None)
    if not branches:
        click.echo("commits:  nothing fetched yet (`git airlock fetch`)")
        return
    base = git.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
    base_id = git.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() if base else ""
    names = sorted(branches)
    counts = git.run_many([["rev-list", "--count", branches[ref], f"^{base_id}"] for ref in names]) if base_id else []
    for i, ref in enumerate(names):
        name = sanitize(ref.removeprefix("refs/remotes/"))
        if base_id:
            click.echo(f"commits:  {name}: {counts[i].strip()} commit(s) not in {sanitize(base)}")
        else:
            click.echo(f"commits:  {name} at {branches[ref][:10]}")
