"""`agents install|update|ls`: agent CLIs installed once, for every sandbox."""

from __future__ import annotations

import click

from git_airlock.agents import AGENTS, get_agent
from git_airlock.app import App
from git_airlock.commands import pass_app


@click.group("agents")
def agents_command() -> None:
    """Install, update or list agent CLIs for every sandbox of the bwrap engine.

    Installed once per user under the data directory, read-only in every
    sandbox; the package's install scripts run in a sandbox without network,
    never as you. (sbx's sandboxes come with their agents.)
    """


def _install(app: App, names: tuple[str, ...], update: bool) -> None:
    app.require_engine()
    for name in names or (app.settings.agent,):
        agent = get_agent(name)
        app.runner.execute(app.engine.install_agent_plan(agent, update))
        if not app.dry_run:
            app.info(f"{agent.name}: {app.engine.agent_version(agent) or 'installed'}, for every sandbox")


@agents_command.command("install")
@click.argument("names", nargs=-1, metavar="[AGENT]...")
@pass_app
def install_command(app: App, names: tuple[str, ...]) -> None:
    """Install AGENT (default: the configured agent) for every sandbox."""
    _install(app, names, update=False)


@agents_command.command("update")
@click.argument("names", nargs=-1, metavar="[AGENT]...")
@pass_app
def update_command(app: App, names: tuple[str, ...]) -> None:
    """Update AGENT (default: the configured agent) to its latest release."""
    _install(app, names, update=True)


@agents_command.command("ls")
@pass_app
def ls_command(app: App) -> None:
    """Each agent, and where a sandbox finds its CLI."""
    for agent in AGENTS.values():
        if agent.name == "shell":
            continue
        click.echo(f"{agent.name:<10} {app.engine.agent_where(agent)}")
