"""Bringing the sandbox's work home: fetch, diff, review, merge, pr."""

from __future__ import annotations

import re
import shutil
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
    from git_airlock.review.report import Report

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


def _short(ref: str) -> str:
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
        click.echo(f"{commit[:10]} {_short(ref)}")
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
        app.runner.show(f"in-process (libgit2): git diff {'--stat ' if stat else ''}{base_name}...{_short(tip_ref)}")
        return
    fork = app.repo.merge_base(base_id, tip) or base_id
    text = sanitize(app.repo.diff(fork, tip, stat=stat))
    if not text.strip():
        app.info(f"no changes: {_short(tip_ref)} adds nothing to {base_name}")
        return
    page(colorize_patch(text) if is_terminal() and not stat else text)


def _branch_of(app: App, tip_ref: str) -> str:
    return tip_ref.removeprefix(f"refs/remotes/{app.remote}/")


def _mark(app: App, tip_ref: str, tip: str) -> None:
    gate.mark(Git(app.location.root), app.sandbox, _branch_of(app, tip_ref), tip)
    click.echo(f"marked {_short(tip_ref)} at {tip[:10]} as reviewed")


def _mark_step(app: App, tip_ref: str) -> Step:
    return gate.mark_step(app.location.root, app.sandbox, _branch_of(app, tip_ref), tip_ref)


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
        app.info(f"nothing to review: {_short(tip_ref)} adds nothing to {base_name}")
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

        show(app.repo, Git(app.location.root), fork, tip, _short(tip_ref), base_name)
    # before a difftool opens; after the pager, so it stands next to the question
    _warn_host_code(app, f"look closely: {gate.HOST_CODE}", gate.host_code_lines(Git(app.location.root), fork, tip))
    if not chosen.in_terminal:
        ended = reviewtool.outcome(reviewtool.run_difftool(app.runner, app.location, chosen, fork, tip))
        if ended:
            raise AirlockError(
                f"the difftool {chosen.name!r} {ended}; nothing was marked",
                hint="fix it or choose another with --tool or REVIEW_TOOL; --tool terminal needs nothing",
            )
    if confirm(f"Mark {_short(tip_ref)} ({tip[:10]}) as reviewed?", default=False, assume=mark):
        _mark(app, tip_ref, tip)


def _mark_now(app: App, tip_ref: str, tip: str) -> None:
    """`--mark-only` and `approve`: the mark, or in a dry run the command that would write it."""
    if app.dry_run:
        app.runner.show(_mark_step(app, tip_ref))
    else:
        _mark(app, tip_ref, tip)


def _show_review_plan(app: App, chosen: reviewtool.ReviewTool, fork: str, tip: str, tip_ref: str) -> None:
    if chosen.note:
        app.runner.show(chosen.note)
    if chosen.in_terminal:
        app.runner.show(f"in-process (libgit2): each commit of {fork}..{_short(tip_ref)} with its patch, in the pager")
    else:
        app.runner.show(
            f"in a scratch repository sharing this one's objects (no filters, hooks or textconv), "
            f"where difftool.{reviewtool.RECORDER}.cmd runs {chosen.name} and records its exit status:"
        )
        app.runner.show(reviewtool.difftool_step(chosen, fork, tip))
    app.runner.show(_mark_step(app, tip_ref))


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


def _gate(app: App, base_id: str, tip: str, yes: bool, allow_host_code: bool, verb: str = "merge") -> bool:
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


@click.command("merge")
@click.argument("base", required=False)
@sandbox_branch_option
@click.option("-y", "--yes", is_flag=True, help="Merge even commits nobody reviewed.")
@click.option(
    "--allow-host-code",
    is_flag=True,
    help="Merge changes to files that can run code here (hooks, CI, scripts) without asking.",
)
@pass_app
def merge_command(app: App, base: str | None, sandbox_branch: str | None, yes: bool, allow_host_code: bool) -> None:
    """Fetch, then merge the sandbox branch into BASE (default: the checked-out branch).

    Unreviewed commits are refused unless you confirm (or pass --yes;
    `git config airlock.requireReview false` makes this a warning). Changes
    to files that can run code on this machine always need an explicit yes.
    Fast-forwards when possible. A BASE that is not checked out is updated
    without touching the working tree. On a conflict nothing changes: your
    branch, index and working tree stay exactly as they were. What was merged
    is marked reviewed.
    """
    base_name, base_id, tip_ref, tip = prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(f"in-process (libgit2): git merge {_short(tip_ref)} into {base_name}")
        app.runner.show(_mark_step(app, tip_ref))
        return
    _gate(app, base_id, tip, yes, allow_host_code)
    message = f"Merge sandbox {app.sandbox} ({_short(tip_ref)}) into {base_name}"
    outcome = app.repo.merge(base_name, tip, message)
    if outcome.kind == "up-to-date":
        click.echo(f"{base_name} already contains {_short(tip_ref)}")
        return
    where = "" if outcome.updated_worktree else " (working tree untouched: branch not checked out)"
    click.echo(f"{base_name}: {outcome.kind} {outcome.old[:10]}..{outcome.new[:10]}{where}")
    _mark(app, tip_ref, tip)


_GITHUB = re.compile(r"^(?:https://|ssh://git@|git@)github\.com[:/](?P<slug>[^/]+/[^/]+?)(?:\.git)?/?$")


def compare_url(origin_url: str, base: str, branch: str) -> str | None:
    """A web page where a pull request can be opened, when the host is known."""
    match = _GITHUB.match(origin_url)
    if match:
        return f"https://github.com/{match['slug']}/compare/{base}...{branch}?expand=1"
    return None


@click.command("pr")
@click.argument("base", required=False)
@click.argument("branch", required=False)
@sandbox_branch_option
@click.option("-y", "--yes", is_flag=True, help="Push even commits nobody reviewed.")
@click.option(
    "--allow-host-code",
    is_flag=True,
    help="Push changes to files that can run code (hooks, CI, scripts) without asking.",
)
@pass_app
def pr_command(
    app: App, base: str | None, branch: str | None, sandbox_branch: str | None, yes: bool, allow_host_code: bool
) -> None:
    """Fetch, point BRANCH (default airlock/<sandbox>) at the sandbox tip, push it, open a PR.

    The same gate as `merge`: unreviewed commits are refused unless you
    confirm (or pass --yes), and changes to files that can run code need an
    explicit yes (--allow-host-code). What you vouched for is marked reviewed
    before the push, so the pre-push hook lets it through; if the push fails,
    the mark is taken back. The push runs on the host with your credentials;
    the sandbox never gets them. Uses `gh pr create` when gh is installed,
    with `git airlock report --markdown` as the body; else prints the compare
    URL and that report to paste.
    """
    base_name, base_id, tip_ref, tip = prepare(app, base, sandbox_branch)
    branch = branch or app.settings.pr_branch or f"airlock/{app.sandbox}"
    if app.location_or_none is not None and app.repo.remote_url("origin") is None and not app.dry_run:
        raise AirlockError(
            "this repository has no `origin` remote to push to", hint="add one: git remote add origin URL"
        )
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    push = Step(("git", "-C", app.location.root, "push", "--set-upstream", "origin", refspec), interactive=True)
    gh = shutil.which("gh")
    if app.dry_run:
        open_pr = _open_pr_step(app, base_name, branch, "PR_TITLE", "REPORT.md")
        app.runner.show("if every commit was reviewed, or you confirm:")
        app.runner.show(_mark_step(app, tip_ref))
        app.runner.show(f"in-process (libgit2): git branch --force {branch} {_short(tip_ref)}")
        app.runner.show(push)
        if gh:
            app.runner.show(open_pr)
        return
    vouched = _gate(app, base_id, tip, yes, allow_host_code, verb="push")
    from git_airlock.review import report

    built = report.build(app, base_name, base_id, tip_ref, tip)
    app.repo.set_branch(branch, tip)
    if vouched:
        _push_marked(app, push, tip_ref, tip)
    else:
        app.runner.run(push)
    if gh:
        _open_pr(app, base_name, branch, built)
        return
    url = compare_url(app.repo.remote_url("origin") or "", base_name, branch)
    if url:
        click.echo(f"open a pull request: {url}")
    else:
        click.echo(f"pushed {branch}; open a pull request against {base_name} on your git host")
    click.echo("with this report as its description:\n")
    click.echo(built.markdown(), nl=False)


def _open_pr_step(app: App, base: str, branch: str, title: str, body_file: str) -> Step:
    argv = ("gh", "pr", "create", "--base", base, "--head", branch, "--title", title, "--body-file", body_file)
    return Step(argv, interactive=True, cwd=app.location.root)


def _open_pr(app: App, base: str, branch: str, built: Report) -> None:
    """``gh pr create`` with the report as the body: the single commit's subject as the title, else one
    that names the sandbox (its subjects are the agent's words; the title is shown sanitised)."""
    import tempfile

    from git_airlock.terminal import sanitize_line

    commits = built.commits
    single = len(commits) == 1
    title = sanitize_line(commits[0].subject) if single else f"{len(commits)} commits from sandbox {app.sandbox}"
    with tempfile.NamedTemporaryFile("w", suffix=".md", prefix="git-airlock-report-", encoding="utf-8") as body:
        body.write(built.markdown())
        body.flush()
        app.runner.run(_open_pr_step(app, base, branch, title, body.name))


def _push_marked(app: App, push: Step, tip_ref: str, tip: str) -> None:
    """Mark the tip reviewed, then push; a push that fails takes the mark back (see :func:`gate.marked_while`)."""
    try:
        with gate.marked_while(Git(app.location.root), app.sandbox, _branch_of(app, tip_ref), tip):
            click.echo(f"marked {_short(tip_ref)} at {tip[:10]} as reviewed")
            app.runner.run(push)
    except AirlockError:
        app.info(f"the push failed, so the review mark of {_short(tip_ref)} is back where it was")
        raise
