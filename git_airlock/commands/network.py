"""Network policy: net, lockdown, unlock.

``lockdown`` and ``unlock`` change one sandbox only: with sbx, through rules scoped
to that sandbox; with bwrap, through that sandbox's own gate. ``--global`` changes
the policy of every sandbox on the machine (sbx: ``sbx policy reset``, which also
stops every running sandbox), so it asks first.
"""

from __future__ import annotations

import json
import os

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.commands._shared import confirm
from git_airlock.errors import AirlockError
from git_airlock.policy import parse_allowlist
from git_airlock.terminal import sanitize


def _confirm_global(app: App, yes: bool) -> None:
    """A machine-wide change reaches every sandbox, other repositories' included: ask first."""
    if not confirm(
        "This resets the network policy of every sandbox on this machine and stops the running ones. Continue?",
        default=False,
        assume=True if yes or app.dry_run else None,
    ):
        raise AirlockError("the network policy was not changed", hint="pass --yes to skip the question")


def summarize(lines: list[str]) -> list[tuple[str, str, int, int, int]]:
    """(sandbox, host:port, allowed, blocked, bytes) per destination, busiest first."""
    table: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
            key = (str(entry["sandbox"]), f"{entry['host']}:{entry['port']}")
        except (ValueError, KeyError, TypeError):
            continue
        row = table.setdefault(key, [0, 0, 0])
        row[0 if entry.get("action") == "allowed" else 1] += 1
        row[2] += int(entry.get("sent", 0)) + int(entry.get("received", 0))
    rows = [(s, h, allowed, blocked, size) for (s, h), (allowed, blocked, size) in table.items()]
    return sorted(rows, key=lambda row: (-(row[2] + row[3]), row[1]))


def _read_lines(paths: list[str]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines.extend(handle)
        except FileNotFoundError:
            continue
    return lines


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
                for line in handle:
                    for sandbox, dest, allowed, _, size in summarize([line]):
                        verdict = "allowed" if allowed else "blocked"
                        click.echo(f"{verdict:<8} {sanitize(dest):<40} {size:>10} B  {sanitize(sandbox)}")
                offsets[path] = handle.tell()
        time.sleep(0.5)


@click.command("net")
@click.option("--all", "all_sandboxes", is_flag=True, help="Show every sandbox, not only this one.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing connections as they happen (bwrap engine).")
@pass_app
def net_command(app: App, all_sandboxes: bool, follow: bool) -> None:
    """Show the hosts the sandbox reached or was refused, with counts.

    sbx: `sbx policy log`. bwrap: the egress proxy's log of every connection attempt.
    """
    app.require_engine()
    paths = app.engine.net_logs(None if all_sandboxes else app.sandbox)
    if paths is None:
        app.runner.execute(app.engine.net_plan(None if all_sandboxes else app.sandbox))
        return
    if app.dry_run:
        app.runner.show(f"read {', '.join(paths) or 'no log yet'}")
        return
    rows = summarize(_read_lines(paths))
    if not rows and not follow:
        click.echo("no connection attempts logged yet")
    if rows:
        click.echo(f"{'destination':<40} {'allowed':>8} {'blocked':>8} {'bytes':>12}  sandbox")
    for sandbox, dest, allowed, blocked, size in rows:
        click.echo(f"{sanitize(dest):<40} {allowed:>8} {blocked:>8} {size:>12}  {sanitize(sandbox)}")
    if follow:
        _follow(paths)


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
