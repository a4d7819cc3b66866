"""Credentials and presets: secret set|ls|rm, presets."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.errors import AirlockError
from git_airlock.terminal import is_terminal

if TYPE_CHECKING:
    from git_airlock.services import Service


def _read_value(service: str) -> str:
    """The credential from a hidden prompt, or from standard input: never from the command line."""
    if is_terminal(sys.stdin):
        value: str = click.prompt(f"{service} credential", hide_input=True, err=True)
        return value
    return sys.stdin.read()


def _local_service(service: str) -> Service:
    from git_airlock.services import SERVICES

    if service not in SERVICES:
        raise AirlockError(
            f"no credential endpoint for {service!r} on the bwrap engine", hint="known services: " + ", ".join(SERVICES)
        )
    return SERVICES[service]


@click.group("secret")
def secret_command() -> None:
    """Keep model API credentials on the host; sandboxes only ever see a placeholder.

    sbx: wraps `sbx secret` (sbx's own store and proxy, and sbx's services: no `claude`).
    bwrap: the OS keyring where one answers, else a file only you can read under the user
    config directory, or the service's variable in your environment.
    """


@secret_command.command("set")
@click.argument("service")
@click.option(
    "--store",
    type=click.Choice(["auto", "keyring", "file"]),
    default="auto",
    show_default=True,
    help="bwrap: the OS keyring, the 0600 file, or the keyring where one answers.",
)
@pass_app
def secret_set(app: App, service: str, store: str) -> None:
    """Store the credential for SERVICE (read from a hidden prompt or standard input)."""
    app.require_engine()
    engine_plan = app.engine.secret_set_plan(service, lambda: None if app.dry_run else _read_value(service))
    if engine_plan is not None:
        app.runner.execute(engine_plan)
        if service == "github" and not app.dry_run:
            app.info(
                "warning: with a github secret, sandboxes can push to GitHub wherever their network policy allows it"
            )
        return
    _local_service(service)
    if app.dry_run:
        target = {
            "auto": "the OS keyring if one answers, else secrets.json (mode 0600)",
            "keyring": "the OS keyring",
            "file": "secrets.json (mode 0600)",
        }[store]
        app.runner.show(f"store the {service} credential in {target}")
        return
    from git_airlock.secrets import require_keyring, set_secret, store_path

    if store == "keyring":
        require_keyring()  # before asking for the key, not after
    where = set_secret(service, _read_value(service), store)
    app.info(f"stored the {service} credential in " + ("the OS keyring" if where == "keyring" else store_path()))


@secret_command.command("ls")
@pass_app
def secret_ls(app: App) -> None:
    """List the services that have a credential (never the values)."""
    app.require_engine()
    engine_plan = app.engine.secret_ls_plan()
    if engine_plan is not None:
        app.runner.execute(engine_plan)
        return
    from git_airlock.secrets import stored_services
    from git_airlock.services import SERVICES

    stored = stored_services()
    kept_in = {"keyring": "stored (OS keyring)", "file": "stored (file)"}
    for name, service in SERVICES.items():
        from_env = f"from ${service.key_env}" if os.environ.get(service.key_env) else "none"
        where = kept_in.get(stored.get(name, ""), from_env)
        click.echo(f"{name:<10} {where:<24} -> {service.upstream}")


@secret_command.command("rm")
@click.argument("service")
@pass_app
def secret_rm(app: App, service: str) -> None:
    """Forget the stored credential for SERVICE."""
    app.require_engine()
    engine_plan = app.engine.secret_rm_plan(service)
    if engine_plan is not None:
        app.runner.execute(engine_plan)
        return
    from git_airlock.secrets import remove_secret

    if app.dry_run:
        app.runner.show(f"remove the stored {service} credential")
    elif not remove_secret(service):
        raise AirlockError(f"no stored credential for {service!r}", hint="`git airlock secret ls` lists them")


@click.command("presets")
@pass_app
def presets_command(app: App) -> None:
    """The host lists a sandbox may reach in balanced mode, and which credential goes where.

    Each agent brings its own hosts; npm, pypi and github are always in; add your own
    with `git config airlock.preset.NAME "host,*.domain,..."`.
    """
    from git_airlock.agents import AGENTS
    from git_airlock.policy import TOOLING_PRESETS
    from git_airlock.services import SERVICES

    for agent in AGENTS.values():
        if agent.hosts:
            keys = ", ".join(agent.credentials) or "-"
            click.echo(f"{agent.name:<10} agent   {', '.join(agent.hosts)}  (credentials: {keys})")
    for name, hosts in TOOLING_PRESETS.items():
        click.echo(f"{name:<10} tooling {', '.join(hosts)}")
    for name, hosts in app.settings.presets.items():
        click.echo(f"{name:<10} custom  {', '.join(hosts)}")
    for name, service in SERVICES.items():
        click.echo(f"{name:<10} credential ${service.key_env} -> {service.header} header to {service.upstream} only")
