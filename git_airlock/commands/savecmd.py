"""`save`: keep the agent's uncommitted work on the host, while it runs."""

from __future__ import annotations

import click

from git_airlock.app import App
from git_airlock.commands import pass_app


@click.command("save")
@click.option("--include-ignored", is_flag=True, help="Keep also the files the clone's .gitignore leaves out.")
@pass_app
def save_command(app: App, include_ignored: bool) -> None:
    """Keep what the agent has not committed, without stopping it or touching its files.

    Its changed, new and deleted files become one commit on top of its HEAD, made in the
    sandbox with a scratch index; its stashes, a detached HEAD and refs a fetch leaves out are
    kept too, all under refs/airlock/wip/<sandbox>/<time>/ (host-only refs that `log` and the
    pre-push hook count as unreviewed work). Links are stored as links. Files larger than
    AIRLOCK_SAVE_MAX_FILE_SIZE are left out and listed. `rm` does the same before it removes.
    """
    from git_airlock import capture

    with app.locked("save"):
        app.require_sandbox()
        snapshot = capture.save(app, include_ignored)
    if snapshot is None:
        return
    for line in capture.describe(snapshot):
        app.info(line)
    if snapshot.left_out:
        app.info(f"warning: not kept (too large or unreadable): {', '.join(snapshot.left_out)}")
        app.info("hint: raise AIRLOCK_SAVE_MAX_FILE_SIZE to keep them")
