"""`ls`: every sandbox of this repository at a glance, and which of their merges would conflict."""

from __future__ import annotations

import json
import time

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.overview import CURRENT, Row, gather
from git_airlock.terminal import human_bytes, sanitize_line


@click.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys listed in README).")
@click.option("--no-forecast", is_flag=True, help="Leave out the conflict forecast (git merge-tree).")
@pass_app
def ls_command(app: App, as_json: bool, no_forecast: bool) -> None:
    """List every sandbox of this repository, on every engine, from what is already fetched.

    Name, engine, agent, state, tmux session, branch, commits ahead of your branch, unreviewed
    commits, the tip's commit time and the network policy it started with; left-over refs of a
    sandbox that is gone are listed too. Then the forecast: for each sandbox, whether it merges
    cleanly into your branch and with each other sandbox (`git merge-tree`, nothing touched),
    and which paths would conflict.
    """
    if app.dry_run:
        app.runner.show("read the sandboxes' refs and records, ask each engine and tmux; git merge-tree per pair")
        return
    rows = gather(app, forecast=not no_forecast)
    if as_json:
        click.echo(json.dumps([_as_json(row) for row in rows], indent=2))
        return
    if not rows:
        app.info("no sandboxes: `git airlock up` starts one")
        return
    _table(rows)
    if not no_forecast:
        _matrix(rows)


def _as_json(row: Row) -> dict[str, object]:
    return {
        "name": row.name,
        "engine": row.engine,
        "agent": row.agent,
        "state": row.state,
        "leftover": row.leftover,
        "tmux": row.tmux or None,
        "branch": row.branch or None,
        "tip": row.tip or None,
        "ahead": row.ahead,
        "unreviewed": row.unreviewed,
        "last_commit": row.last_commit,
        "policy": row.policy or None,
        "layer_bytes": row.layer_bytes,
        "conflicts": {other: list(paths) for other, paths in row.conflicts.items()},
    }


def _table(rows: list[Row]) -> None:
    header: tuple[str, ...] = ("sandbox", "engine", "agent", "state", "tmux", "branch", "ahead", "unreviewed")
    header += ("last commit", "policy", "layer")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.last_commit)) if row.last_commit else "-"
        state = "gone (refs left)" if row.leftover else row.state
        cells = (row.name, row.engine, row.agent or "?", state, row.tmux or "-", row.branch or "-")
        layer = human_bytes(row.layer_bytes) if row.layer_bytes is not None else "-"
        lines.append((*cells, str(row.ahead), str(row.unreviewed), when, row.policy or "-", layer))
    widths = [max(len(sanitize_line(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        click.echo(
            "  ".join(sanitize_line(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _matrix(rows: list[Row]) -> None:
    """A compact matrix (``.`` clean, ``X`` conflict), then the conflicting paths of each pair."""
    forecast = [row for row in rows if row.conflicts]
    if not forecast:
        return
    columns = [CURRENT, *(row.name for row in forecast)]
    width = max(len(sanitize_line(name)) for name in [*columns, "merges"])
    click.echo("")
    click.echo(f"{'merges':<{width}}  " + "  ".join(sanitize_line(name) for name in columns))
    for row in forecast:
        marks = []
        for column in columns:
            paths = row.conflicts.get(column)
            mark = "-" if column == row.name else "?" if paths is None else "X" if paths else "."
            marks.append(mark.ljust(len(sanitize_line(column))))
        click.echo(f"{sanitize_line(row.name):<{width}}  " + "  ".join(marks))
    seen = set()
    for row in forecast:
        for other, paths in row.conflicts.items():
            pair = frozenset((row.name, other))
            if paths and pair not in seen:
                seen.add(pair)
                against = "your branch" if other == CURRENT else other
                click.echo(
                    f"{sanitize_line(row.name)} x {sanitize_line(against)}: {', '.join(map(sanitize_line, paths))}"
                )
