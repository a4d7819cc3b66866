"""The review ledger from the command line: log, approve, hooks."""

from __future__ import annotations

import json
from typing import TypedDict

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.gitcmd import Git
from git_airlock.review import ledger
from git_airlock.review.commitinfo import describe
from git_airlock.terminal import sanitize_line


class HostCodeFile(TypedDict):
    path: str
    reason: str


class UnreviewedCommit(TypedDict):
    id: str
    author: str
    date: str
    subject: str
    files: list[str]
    host_code: list[HostCodeFile]


class UnreviewedBranch(TypedDict):
    """One row of ``log --json``."""

    sandbox: str
    branch: str
    commits: list[UnreviewedCommit]


def unreviewed_report(app: App, all_sandboxes: bool) -> list[UnreviewedBranch]:
    """Per sandbox and branch, the unreviewed commits, oldest first."""
    git = Git(app.location.root)
    view = ledger.read(git)
    names = sorted(view.sandboxes) if all_sandboxes else [app.sandbox]
    rows: list[UnreviewedBranch] = []
    for name in names:
        sandbox = view.sandboxes.get(name)
        for branch in sorted(sandbox.tips) if sandbox else []:
            commits = list(reversed(ledger.unreviewed(git, view, name, branch)))
            rows.append(
                {
                    "sandbox": name,
                    "branch": branch,
                    "commits": [
                        {
                            "id": d.id,
                            "author": d.author,
                            "date": d.date,
                            "subject": d.subject,
                            "files": [c.path for c in d.changes],
                            "host_code": [{"path": p, "reason": r} for p, r in d.host_code],
                        }
                        for d in describe(git, commits)
                    ],
                }
            )
    return rows


@click.command("log")
@click.option("--all-sandboxes", is_flag=True, help="Every sandbox of this repository, not only the current one.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def log_command(app: App, all_sandboxes: bool, as_json: bool) -> None:
    """Sandbox commits nobody has reviewed yet, per sandbox and branch, oldest first.

    Commits that change files able to run code on your machine (git attributes,
    hooks, CI, package scripts, Makefiles, executables, ...) are marked with `!`.
    Works on what was fetched: run `git airlock fetch` first for the latest.
    """
    rows = unreviewed_report(app, all_sandboxes)
    if as_json:
        # ensure_ascii (never turn it off): every non-ASCII character, lone surrogates from
        # undecodable bytes included, becomes a \uXXXX escape, so names survive exactly and
        # nothing reaches a terminal raw (json.dumps already escapes C0 controls)
        click.echo(json.dumps(rows, indent=2, ensure_ascii=True))
        return
    pending = [row for row in rows if row["commits"]]
    if not pending:
        scope = "any sandbox" if all_sandboxes else f"sandbox {app.sandbox}"
        click.echo(
            f"nothing to review: no unreviewed commits from {scope}"
            if rows
            else f"nothing fetched from {scope} yet (`git airlock fetch`)"
        )
        return
    for row in pending:
        click.echo(
            f"sandbox {sanitize_line(row['sandbox'])}, branch {sanitize_line(row['branch'])}: "
            f"{len(row['commits'])} unreviewed commit(s)"
        )
        for commit in row["commits"]:
            files = len(commit["files"])
            click.echo(
                f"  {commit['id'][:10]} {commit['date'][:10]} {sanitize_line(commit['author'])}: "
                f"{sanitize_line(commit['subject'])} ({files} file{'s' if files != 1 else ''})"
            )
            for item in commit["host_code"]:
                click.echo(f"    ! {sanitize_line(item['path'])}: {item['reason']}")


@click.group("hooks")
def hooks_command() -> None:
    """Manage the pre-push hook that catches unreviewed sandbox commits.

    `git config airlock.prePush warn|block|off` sets what it does (default: warn).
    """


@hooks_command.command("install")
@click.option("--hooks-path", is_flag=True, help="Install into core.hooksPath when it is set.")
@click.option("--push-notes", is_flag=True, help="Also push the provenance notes (refs/notes/airlock) with every push.")
@pass_app
def hooks_install(app: App, hooks_path: bool, push_notes: bool) -> None:
    """Install the pre-push hook (an existing one is kept and chained)."""
    from git_airlock.review import hookinstall as hooks

    git = Git(app.location.root, safe=False)
    click.echo(hooks.install(git, hooks_path))
    if push_notes:
        git.run("config", "airlock.pushNotes", "true")
        click.echo("the hook also pushes refs/notes/airlock to the remote of each push (airlock.pushNotes)")


@hooks_command.command("uninstall")
@pass_app
def hooks_uninstall(app: App) -> None:
    """Remove the pre-push hook (restoring the one that was there before)."""
    from git_airlock.review import hookinstall as hooks

    click.echo(hooks.uninstall(Git(app.location.root, safe=False)))


@hooks_command.command("status")
@pass_app
def hooks_status(app: App) -> None:
    """Whether the hook is installed, what it chains, and its mode."""
    from git_airlock.review import hookinstall as hooks

    git = Git(app.location.root, safe=False)
    state = hooks.state(git)
    if state.installed:
        click.echo(f"installed: {state.directory}/{hooks.HOOK}")
    elif state.foreign:
        click.echo(f"not installed: {state.directory}/{hooks.HOOK} is another tool's hook")
    else:
        click.echo(f"not installed (hooks directory: {state.directory})")
    if state.legacy:
        click.echo(f"chains: {hooks.LEGACY}")
    if state.hooks_path_config:
        click.echo(f"core.hooksPath: {state.hooks_path_config}")
    click.echo(f"mode: {app.settings.pre_push} ({app.settings.sources['pre_push']}, airlock.prePush)")
