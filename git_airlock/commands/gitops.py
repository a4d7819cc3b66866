"""Bringing the sandbox's work home: fetch, diff, review, merge, pr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.commands._shared import confirm
from git_airlock.errors import AirlockError
from git_airlock.fetching import fetch
from git_airlock.gitcmd import Git
from git_airlock.plan import Step
from git_airlock.review import gate
from git_airlock.review import tool as reviewtool
from git_airlock.review.target import base_commit, resolve_base, resolve_tip
from git_airlock.terminal import colorize_patch, is_terminal, page, sanitize

if TYPE_CHECKING:
    pass

sandbox_branch_option = click.option(
    "--sandbox-branch",
    metavar="BRANCH",
    help="Sandbox branch to use (default: the one named like the base, or its only branch).",
)


def prepare(app: App, base: str | None, sandbox_branch: str | None) -> tuple[str, str, str, str]:
    """Fetch, then ``(base name, base commit, tip ref, tip commit)``."""
    fetch(app)
    base_name = resolve_base(app, base)
    if app.dry_run:
        ref = f"refs/remotes/{app.remote}/{sandbox_branch or base_name}"
        return base_name, base_name, ref, ref
    tip_ref, tip = resolve_tip(app, base_name, sandbox_branch)
    return base_name, base_commit(app, base_name), tip_ref, tip


def short_ref(ref: str) -> str:
    """A sandbox ref as the user sees it: ``sandbox-<name>/<branch>``, sanitised.

    Branch names are the sandbox's choice, and every message and commit
    message that names one goes through here.
    """
    return sanitize(ref.removeprefix("refs/remotes/"))


@click.command("fetch")
@pass_app
def fetch_command(app: App) -> None:
    """Fetch the sandbox's branches into refs/remotes/sandbox-<name>/*.

    Starts a stopped sandbox first. Objects are checked (fsck) and only
    branches are taken: a sandbox can never write your branches or tags.
    Initialised submodules are fetched too.
    """
    fetch(app)
    if app.dry_run:
        return
    branches = app.repo.refs_under(f"refs/remotes/{app.remote}/")
    for ref, commit in sorted(branches.items()):
        click.echo(f"{commit[:10]} {short_ref(ref)}")
    if not branches:
        app.info("the sandbox has no branches yet")


@click.command("diff")
@click.argument("base", required=False)
@click.option("--stat", is_flag=True, help="Show a diffstat instead of the patch.")
@sandbox_branch_option
@pass_app
def diff_command(app: App, base: str | None, stat: bool, sandbox_branch: str | None) -> None:
    """Fetch, then show what the sandbox changed since it forked from BASE.

    BASE defaults to the checked-out branch. Like `git diff BASE...TIP`: the
    changes on the sandbox side of the merge base, so work you committed
    meanwhile does not show up as reverted. Paged on a terminal.
    """
    base_name, base_id, tip_ref, tip = prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(f"in-process (libgit2): git diff {'--stat ' if stat else ''}{base_name}...{short_ref(tip_ref)}")
        return
    fork = app.repo.merge_base(base_id, tip) or base_id
    text = sanitize(app.repo.diff(fork, tip, stat=stat))
    if not text.strip():
        app.info(f"no changes: {short_ref(tip_ref)} adds nothing to {base_name}")
        return
    page(colorize_patch(text) if is_terminal() and not stat else text)


def branch_of(app: App, tip_ref: str) -> str:
    return tip_ref.removeprefix(f"refs/remotes/{app.remote}/")


def mark_reviewed(app: App, tip_ref: str, tip: str) -> None:
    gate.mark(Git(app.location.root), app.sandbox, branch_of(app, tip_ref), tip)
    click.echo(f"marked {short_ref(tip_ref)} at {tip[:10]} as reviewed")


def mark_step(app: App, tip_ref: str) -> Step:
    return gate.mark_step(app.location.root, app.sandbox, branch_of(app, tip_ref), tip_ref)


@click.command("review")
@click.argument("base", required=False)
@sandbox_branch_option
@click.option(
    "--tool",
    metavar="TOOL",
    help="git difftool to use, or `terminal` (default: REVIEW_TOOL, else git's diff.tool, else vscode).",
)
@click.option(
    "--mark/--no-mark",
    default=None,
    help="Mark the range reviewed when the review ends (default: ask on a terminal, else no).",
)
@click.option("--mark-only", is_flag=True, help="Mark the range reviewed without opening a tool.")
@pass_app
def review_command(
    app: App, base: str | None, sandbox_branch: str | None, tool: str | None, mark: bool | None, mark_only: bool
) -> None:
    """Fetch, then show what the sandbox changed, and ask whether to mark it reviewed.

    With a difftool, `git difftool --dir-diff` runs in a scratch repository
    that borrows your objects, so your working tree is never touched and no
    filter driver or hook named by the sandbox's files can run. With `--tool
    terminal` (and by default where vscode cannot start: no `code`, or no
    display), each commit is shown in the pager: message, files that can run
    code here, patch. A tool that cannot start, or that exits with an error,
    marks nothing. The reviewed range is recorded in the review ledger
    (refs/airlock/reviewed/...), which `log`, `merge`, `pr` and the pre-push
    hook read.
    """
    base_name, base_id, tip_ref, tip = prepare(app, base, sandbox_branch)
    if mark_only:
        _mark_now(app, tip_ref, tip)
        return
    fork = base_id if app.dry_run else (app.repo.merge_base(base_id, tip) or base_id)
    if not app.dry_run and (fork == tip or not app.repo.diff(fork, tip, stat=True).strip()):
        app.info(f"nothing to review: {short_ref(tip_ref)} adds nothing to {base_name}")
        return
    chosen = reviewtool.resolve(app.location.root, tool, app.settings.review_tool, app.settings.sources["review_tool"])
    if app.dry_run:
        _show_review_plan(app, chosen, fork, tip, tip_ref)
        return
    if chosen.note:
        app.info(chosen.note)
    from git_airlock.review import report

    built = report.build(app, base_name, base_id, tip_ref, tip)
    for line in built.summary() if not chosen.in_terminal else built.text().splitlines():
        app.info(line)
    if chosen.in_terminal:
        from git_airlock.review.pager import show

        show(app.repo, Git(app.location.root), fork, tip, short_ref(tip_ref), base_name)
    # before a difftool opens; after the pager, so it stands next to the question
    _warn_host_code(app, f"look closely: {gate.HOST_CODE}", gate.host_code_lines(Git(app.location.root), fork, tip))
    if not chosen.in_terminal:
        ended = reviewtool.outcome(reviewtool.run_difftool(app.runner, app.location, chosen, fork, tip))
        if ended:
            raise AirlockError(
                f"the difftool {chosen.name!r} {ended}; nothing was marked",
                hint="fix it or choose another with --tool or REVIEW_TOOL; --tool terminal needs nothing",
            )
    if confirm(f"Mark {short_ref(tip_ref)} ({tip[:10]}) as reviewed?", default=False, assume=mark):
        mark_reviewed(app, tip_ref, tip)


def _mark_now(app: App, tip_ref: str, tip: str) -> None:
    """`--mark-only` and `approve`: the mark, or in a dry run the command that would write it."""
    if app.dry_run:
        app.runner.show(mark_step(app, tip_ref))
    else:
        mark_reviewed(app, tip_ref, tip)


def _show_review_plan(app: App, chosen: reviewtool.ReviewTool, fork: str, tip: str, tip_ref: str) -> None:
    if chosen.note:
        app.runner.show(chosen.note)
    if chosen.in_terminal:
        app.runner.show(
            f"in-process (libgit2): each commit of {fork}..{short_ref(tip_ref)} with its patch, in the pager"
        )
    else:
        app.runner.show(
            f"in a scratch repository sharing this one's objects (no filters, hooks or textconv), "
            f"where difftool.{reviewtool.RECORDER}.cmd runs {chosen.name} and records its exit status:"
        )
        app.runner.show(reviewtool.difftool_step(chosen, fork, tip))
    app.runner.show(mark_step(app, tip_ref))


@click.command("approve")
@click.argument("base", required=False)
@sandbox_branch_option
@pass_app
def approve_command(app: App, base: str | None, sandbox_branch: str | None) -> None:
    """Fetch, then mark the sandbox branch reviewed without opening a tool (`review --mark-only`)."""
    _, _, tip_ref, tip = prepare(app, base, sandbox_branch)
    _mark_now(app, tip_ref, tip)


_DONE = {"merge": "merged", "push": "pushed"}


def _warn_host_code(app: App, heading: str, lines: tuple[str, ...] | list[str]) -> bool:
    """Print the `!` lines under ``heading``; whether there were any."""
    if lines:
        app.info(heading)
        for line in lines:
            app.info(line)
    return bool(lines)


def check_gate(app: App, base_id: str, tip: str, yes: bool, allow_host_code: bool, verb: str = "merge") -> bool:
    """Refuse unreviewed commits and ask about host-code changes before they are merged or pushed.

    True when every commit was reviewed or the user vouched for it (at the
    prompt or with --yes), so what goes through may be marked reviewed; False
    when only `airlock.requireReview false` let unreviewed commits through.
    """
    incoming = gate.inspect(Git(app.location.root), app.sandbox, base_id, tip)
    vouched = True
    if incoming.unreviewed:
        message = f"{len(incoming.unreviewed)} of the {len(incoming.commits)} commit(s) to {verb} were not reviewed"
        if not app.settings.flag("require_review"):
            app.info(f"warning: {message}")
            vouched = False
        elif not confirm(f"{message}. {verb.capitalize()} them anyway?", default=False, assume=True if yes else None):
            raise AirlockError(message, hint=f"review them with `git airlock review` (or pass --yes to {verb} anyway)")
    if _warn_host_code(app, gate.HOST_CODE, incoming.host_code) and not confirm(
        f"{verb.capitalize()} them?", default=False, assume=True if allow_host_code else None
    ):
        raise AirlockError(
            f"not {_DONE[verb]}: the sandbox changed files that can run code on this machine",
            hint=f"inspect them with `git airlock diff`; pass --allow-host-code to {verb} them anyway",
        )
    return vouched
