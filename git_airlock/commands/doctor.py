"""``doctor``: is everything in place to run a sandbox? OK/WARN/FAIL lines."""

from __future__ import annotations

import click

from git_airlock.app import App
from git_airlock.checks import Report
from git_airlock.commands import pass_app
from git_airlock.errors import AirlockError
from git_airlock.process import probe


def _sandbox_or_none(app: App) -> str | None:
    """This repository's sandbox, if there is one to name (doctor also runs outside repositories)."""
    try:
        return app.sandbox if app.location_or_none is not None else None
    except AirlockError:
        return None


@click.command("doctor")
@pass_app
def doctor_command(app: App) -> None:
    """Check the engine in use (sbx: installed and Docker's, daemon, login, forge credentials a
    sandbox could push with, virtualization; bwrap: installed, namespaces, where credentials are
    kept), git and tmux."""
    report = Report()
    engine, why = app.engine_choice
    report.line("OK", "engine", f"{engine} ({why})")
    app.engine.doctor(report, app.runner, _sandbox_or_none(app))
    _check_git(report)
    tmux = probe(["tmux", "-V"])
    if tmux and tmux.returncode == 0:
        report.line("OK", "tmux", tmux.stdout.strip())
    else:
        report.line("WARN", "tmux", "not installed (only needed for --tmux and attach)")
    if report.failed:
        raise AirlockError("some checks failed", hint="fix the FAIL lines above, then run `git airlock doctor` again")


def _check_git(report: Report) -> None:
    """git itself, and whether it can forecast merges (``merge-tree --write-tree``: git 2.38)."""
    import re

    from git_airlock.forecast import MINIMUM_GIT

    git = probe(["git", "--version"])
    if not git or git.returncode != 0:
        report.line("FAIL", "git", "not installed")
        return
    found = re.search(r"(\d+)\.(\d+)", git.stdout)
    version = (int(found[1]), int(found[2])) if found else (0, 0)
    if version < MINIMUM_GIT:
        wanted = ".".join(map(str, MINIMUM_GIT))
        report.line("WARN", "git", f"{git.stdout.strip()}: `ls` cannot forecast conflicts before git {wanted}")
    else:
        report.line("OK", "git", git.stdout.strip())
