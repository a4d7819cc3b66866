"""Network policy: net, lockdown, unlock.

``lockdown`` and ``unlock`` change one sandbox only: with sbx, through rules scoped
to that sandbox; with bwrap, through that sandbox's own gate. ``--global`` changes
the policy of every sandbox on the machine (sbx: ``sbx policy reset``, which also
stops every running sandbox), so it asks first.
"""

from __future__ import annotations

import os
import shlex

import click

from git_airlock import netlog
from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.commands._shared import confirm
from git_airlock.errors import AirlockError
from git_airlock.policy import parse_allowlist
from git_airlock.terminal import sanitize, sanitize_line


def _confirm_global(app: App, yes: bool) -> None:
    """A machine-wide change reaches every sandbox, other repositories' included: ask first."""
    if not confirm(
        "This resets the network policy of every sandbox on this machine and stops the running ones. Continue?",
        default=False,
        assume=True if yes or app.dry_run else None,
    ):
        raise AirlockError("the network policy was not changed", hint="pass --yes to skip the question")


def _follow(paths: list[str]) -> None:
    """Print new log entries as they arrive, like `tail -f`, until Ctrl-C."""
    import time

    offsets = {path: os.path.getsize(path) if os.path.exists(path) else 0 for path in paths}
    while True:
        for path in paths:
            if not os.path.exists(path):
                continue
            if os.path.getsize(path) < offsets[path]:  # rotated: a new file started
                offsets[path] = 0
            with open(path, encoding="utf-8", errors="replace") as handle:
                handle.seek(offsets[path])
                for line in handle:  # one row per attempt, as it happens
                    for row in netlog.summarize(netlog.parse([line])):
                        verdict = "allowed" if row.allowed else "failed" if row.failed else "blocked"
                        click.echo(f"{verdict:<8} {sanitize(row.where):<40} {row.bytes:>10} B  {sanitize(row.sandbox)}")
                offsets[path] = handle.tell()
        time.sleep(0.5)


@click.command("net")
@click.option("--all", "all_sandboxes", is_flag=True, help="Show every sandbox, not only this one.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing connections as they happen (bwrap engine).")
@click.option("--suggest", is_flag=True, help="Group blocked hosts by domain and print the commands that allow them.")
@pass_app
def net_command(app: App, all_sandboxes: bool, follow: bool, suggest: bool) -> None:
    """Show the hosts the sandbox reached, was refused, or could not reach, with counts.

    sbx: `sbx policy log`. bwrap: the egress gate's log of every connection attempt;
    "blocked" is the policy's verdict, "failed" an allowed host that could not be reached.
    With --suggest: the blocked hosts by domain, what allowing each would open, and the
    exact `git config airlock.preset...` command that lets the next run reach it.
    """
    app.require_engine()
    name = None if all_sandboxes else app.sandbox
    if suggest:
        _suggest(app, name)
        return
    paths = app.engine.net_logs(name)
    if paths is None:
        app.runner.execute(app.engine.net_plan(name))
        return
    if app.dry_run:
        app.runner.show(f"read {', '.join(paths) or 'no log yet'}")
        return
    rows = netlog.summarize(netlog.parse(netlog.read_lines(paths)))
    if not rows and not follow:
        click.echo("no connection attempts logged yet")
    if rows:
        click.echo(f"{'destination':<40} {'allowed':>8} {'blocked':>8} {'failed':>8} {'bytes':>12}  sandbox")
    for row in rows:
        click.echo(
            f"{sanitize(row.where):<40} {row.allowed:>8} {row.blocked + row.refused:>8} {row.failed:>8} "
            f"{row.bytes:>12}  {sanitize(row.sandbox)}"
        )
    if follow:
        _follow(paths)


def _suggest(app: App, name: str | None) -> None:
    """``net --suggest``: what the policy blocked, grouped, with the commands that would allow it."""
    entries = app.engine.connection_entries(app.runner, name)
    if app.dry_run:
        return
    suggestions = netlog.suggest(netlog.summarize(entries))
    if not suggestions:
        click.echo("the network policy blocked nothing")
        return
    for item in suggestions:
        shown = ", ".join(f"{sanitize_line(where)} ({count})" for where, count in item.destinations)
        click.echo(f"{sanitize_line(item.domain)}: {item.attempts} blocked attempt(s): {shown}")
        preset = f"git config airlock.preset.{item.preset_name}"
        click.echo(f"  these hosts only:       {preset} {shlex.quote(item.hosts_rule)}")
        if item.domain_rule != item.hosts_rule:
            click.echo(f"  the domain and all under it: {preset} {shlex.quote(item.domain_rule)}")
    click.echo("a preset is allowed from the next start of every sandbox of this repository (balanced policy);")
    click.echo("a locked-down sandbox: add the hosts to ALLOW, then `git airlock lockdown`")


@click.command("lockdown")
@click.option("--global", "machine_wide", is_flag=True, help="Deny-all for every sandbox on this machine (sbx).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before a --global change.")
@pass_app
def lockdown_command(app: App, machine_wide: bool, yes: bool) -> None:
    """Let this sandbox reach only the ALLOW hosts; other sandboxes are not touched.

    ALLOW (or `git config airlock.allow`) is a comma-separated list of hosts,
    `*.domain` wildcards and optional `:port`s; the default covers the
    Anthropic and OpenAI APIs, GitHub and npm. With --global (sbx): reset the
    policy of every sandbox to deny-all, stopping the running ones, then allow
    ALLOW for this sandbox.
    """
    hosts = parse_allowlist(app.settings.allow)
    app.require_engine()
    if machine_wide:
        plan = app.engine.global_lockdown_plan(app.sandbox, hosts)
        _confirm_global(app, yes)
        app.runner.execute(plan)
        if not app.dry_run:
            app.info(f"every sandbox locked down: deny-all, except {len(hosts)} host rule(s) for {app.sandbox}")
        return
    app.runner.execute(app.engine.policy_init_plan(app.settings.network_policy))
    plan = app.engine.lockdown_plan(app.runner, app.sandbox, hosts)
    app.runner.execute(plan)
    if not app.dry_run:
        for note in (step for step in plan.steps if isinstance(step, str)):
            app.info(f"note: {note}")
        when = app.engine.network_change_takes_effect
        app.info(f"sandbox {app.sandbox}: only {len(hosts)} host rule(s) reachable, {when}; other sandboxes unchanged")


@click.command("unlock")
@click.option("--global", "machine_wide", is_flag=True, help="Reset every sandbox's policy on this machine (sbx).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before a --global change.")
@pass_app
def unlock_command(app: App, machine_wide: bool, yes: bool) -> None:
    """Undo this sandbox's lockdown: it follows GLOBAL_NETWORK_POLICY (default: balanced) again.

    With --global (sbx): reset the policy of every sandbox to GLOBAL_NETWORK_POLICY,
    stopping the running ones.
    """
    app.require_engine()
    mode = app.settings.network_policy
    if machine_wide:
        plan = app.engine.global_unlock_plan(mode)
        _confirm_global(app, yes)
        app.runner.execute(plan)
        if not app.dry_run:
            app.info(f"the network policy of every sandbox reset to {mode}")
        return
    name = app.sandbox if app.location_or_none is not None else None
    app.runner.execute(app.engine.unlock_plan(app.runner, name, mode))
    if not app.dry_run:
        app.info(f"sandbox {name}: unlocked, {app.engine.network_change_takes_effect}; other sandboxes unchanged")
