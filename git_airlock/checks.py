"""OK/WARN/FAIL lines for `git airlock doctor`: the report, and the checks every engine shares.

Each engine adds its own checks (:meth:`git_airlock.engines.base.Engine.doctor`); the command
adds git and tmux. Checks only look: they never change the machine.
"""

from __future__ import annotations

import shutil

import click

from git_airlock.process import probe


class Report:
    def __init__(self) -> None:
        self.failed = False

    def line(self, level: str, what: str, detail: str) -> None:
        if level == "FAIL":
            self.failed = True
        click.echo(f"{level:<4}  {what:<16} {detail}")


def check_installed(report: Report, tool: str, version_args: list[str], hint: str) -> str | None:
    """An OK line with the tool's version, or a FAIL line with ``hint``; returns its path."""
    path = shutil.which(tool)
    if path is None:
        report.line("FAIL", tool, f"not installed (hint: {hint})")
        return None
    version = probe([path, *version_args])
    lines = version.stdout.strip().splitlines() if version else []
    report.line("OK", tool, f"{lines[0] if lines else 'version unknown'} ({path})")
    return path
