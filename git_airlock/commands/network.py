"""Network policy: net, lockdown, unlock (over sbx's own policy commands).

sbx's ``policy init`` is one-time, and its documentation says the way to start
over is ``sbx policy reset``. So ``lockdown`` resets, initialises deny-all and
adds the allowlist for this sandbox; ``unlock`` resets and initialises the
configured default again (so the daemon does not stop at its first-start
prompt). A reset stops running sandboxes, so both ask first.
"""

from __future__ import annotations

import click

from git_airlock.app import App
from git_airlock.commands._shared import confirm
from git_airlock.errors import AirlockError
from git_airlock.policy import parse_allowlist

pass_app = click.make_pass_decorator(App)


def _confirm_reset(app: App, yes: bool) -> None:
    if not app.engine.policy_reset_stops_sandboxes:
        return
    if not confirm(
        "This resets sbx's network policies and stops running sandboxes. Continue?",
        default=False,
        assume=True if yes or app.dry_run else None,
    ):
        raise AirlockError("the network policy was not changed", hint="pass --yes to skip the question")


@click.command("net")
@click.option("--all", "all_sandboxes", is_flag=True, help="Show every sandbox, not only this one.")
@pass_app
def net_command(app: App, all_sandboxes: bool) -> None:
    """Show the hosts the sandbox reached or was refused (`sbx policy log`)."""
    app.require_engine()
    app.runner.execute(app.engine.net_plan(None if all_sandboxes else app.sandbox))


@click.command("lockdown")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before resetting the policy store.")
@pass_app
def lockdown_command(app: App, yes: bool) -> None:
    """Deny all network traffic by default and allow only the ALLOW hosts to this sandbox.

    ALLOW (or `git config airlock.allow`) is a comma-separated list of hosts,
    `*.domain` wildcards and optional `:port`s; the default covers the
    Anthropic and OpenAI APIs, GitHub and npm.
    """
    hosts = parse_allowlist(app.settings.allow)
    app.require_engine()
    _confirm_reset(app, yes)
    app.runner.execute(app.engine.lockdown_plan(app.sandbox, hosts))
    if app.dry_run:
        return
    if app.engine.name == "bwrap":
        app.info(f"sandbox {app.sandbox}: no network from its next start (allowlists need the egress gate)")
    else:
        app.info(f"network locked down: deny-all, except {len(hosts)} host rule(s) for {app.sandbox}")


@click.command("unlock")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before resetting the policy store.")
@pass_app
def unlock_command(app: App, yes: bool) -> None:
    """Reset sbx's network policies to GLOBAL_NETWORK_POLICY (default: balanced)."""
    app.require_engine()
    _confirm_reset(app, yes)
    mode = app.settings.global_network_policy
    name = app.sandbox if app.location_or_none is not None else None
    app.runner.execute(app.engine.unlock_plan(name, mode))
    if not app.dry_run:
        app.info(f"network policies reset to {mode}")
