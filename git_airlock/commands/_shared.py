"""What several commands share in talking to the user."""

from __future__ import annotations

import sys

import click

from git_airlock.terminal import is_terminal


def confirm(question: str, default: bool, assume: bool | None = None) -> bool:
    """Ask on a terminal; without one, use ``assume`` (or fail when there is no safe answer)."""
    if assume is not None:
        return assume
    if not is_terminal(sys.stdin):
        return default
    return click.confirm(question, default=default, err=True)
