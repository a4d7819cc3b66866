"""One module per theme; each command parses, calls the core, prints."""

from __future__ import annotations

import click

from git_airlock.app import App

pass_app = click.make_pass_decorator(App)
"""Hands a command the App the root command made (hatch's habit: one application object per run)."""


def app_of(ctx: click.Context) -> App:
    """The App, for commands that need their click context too (``up`` and ``run`` read what followed ``--``)."""
    app = ctx.find_object(App)
    if app is None:  # what pass_app raises: a command run outside the `git airlock` group
        raise RuntimeError("Managed to invoke callback without a context object of type 'App' existing.")
    return app
