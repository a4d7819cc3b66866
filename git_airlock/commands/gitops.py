"""Bringing the sandbox's work home: fetch, diff, review, merge, pr."""

from __future__ import annotations

import re
import shutil

import click

from git_airlock import ledger
from git_airlock.app import App
from git_airlock.commands._shared import (
    base_commit,
    confirm,
    fetch,
    resolve_base,
    resolve_tip,
)
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.plan import Plan, Step
from git_airlock.terminal import is_terminal, page, sanitize

pass_app = click.make_pass_decorator(App)
sandbox_branch_option = click.option(
    "--sandbox-branch",
    metavar="BRANCH",
    help="Sandbox branch to use (default: the one named like the base, or its only branch).",
)


def _prepare(app: App, base: str | None, sandbox_branch: str | None) -> tuple[str, str, str, str]:
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


_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}


def _colorize(patch: str) -> str:
    lines = []
    for line in patch.splitlines(keepends=True):
        if line.startswith(("diff --git", "index ", "--- ", "+++ ")):
            lines.append(f"\x1b[1m{line.rstrip(chr(10))}\x1b[m\n")
        elif line[:1] in _COLORS:
            lines.append(f"{_COLORS[line[0]]}{line.rstrip(chr(10))}\x1b[m\n")
        else:
            lines.append(line)
    return "".join(lines)


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
    base_name, base_id, tip_ref, tip = _prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(f"in-process (libgit2): git diff {'--stat ' if stat else ''}{base_name}...{_short(tip_ref)}")
        return
    fork = app.repo.merge_base(base_id, tip) or base_id
    text = sanitize(app.repo.diff(fork, tip, stat=stat))
    if not text.strip():
        app.info(f"no changes: {_short(tip_ref)} adds nothing to {base_name}")
        return
    page(_colorize(text) if is_terminal() and not stat else text)


def _difftool_config(tool: str, repo_root: str) -> list[tuple[str, str]]:
    """`vscode` is not a difftool git knows before 2.42: define it unless the user did."""
    if tool != "vscode":
        return []
    if Git(repo_root, safe=False).config("difftool.vscode.cmd"):
        return []
    return [("difftool.vscode.cmd", 'code --wait --new-window --diff "$LOCAL" "$REMOTE"')]


def _branch_of(app: App, tip_ref: str) -> str:
    return tip_ref.removeprefix(f"refs/remotes/{app.remote}/")


def _mark(app: App, tip_ref: str, tip: str) -> None:
    from git_airlock.gitcmd import Git

    ledger.mark_reviewed(Git(app.location.root), app.sandbox, _branch_of(app, tip_ref), tip)
    click.echo(f"marked {_short(tip_ref)} at {tip[:10]} as reviewed")


def _mark_step(app: App, tip_ref: str) -> Step:
    """The ledger update, as the plain git command a dry run prints."""
    return Step(
        (
            "git",
            "-C",
            app.location.root,
            "update-ref",
            f"{ledger.REVIEWED}{app.sandbox}/{_branch_of(app, tip_ref)}",
            tip_ref,
        )
    )


@click.command("review")
@click.argument("base", required=False)
@sandbox_branch_option
@click.option("--tool", metavar="TOOL", help="git difftool to use (default: REVIEW_TOOL or vscode).")
@click.option(
    "--mark/--no-mark",
    default=None,
    help="Mark the range reviewed when the tool closes (default: ask on a terminal, else no).",
)
@click.option("--mark-only", is_flag=True, help="Mark the range reviewed without opening a tool.")
@pass_app
def review_command(
    app: App, base: str | None, sandbox_branch: str | None, tool: str | None, mark: bool | None, mark_only: bool
) -> None:
    """Fetch, then open `git difftool --dir-diff` on what the sandbox changed.

    The tool runs in a scratch repository that borrows your objects, so your
    working tree is never touched and no filter driver or hook named by the
    sandbox's files can run. When it closes, the reviewed range is recorded in
    the review ledger (refs/airlock/reviewed/...), which `log`, `merge` and
    the pre-push hook read.
    """
    tool = tool or app.settings.review_tool
    base_name, base_id, tip_ref, tip = _prepare(app, base, sandbox_branch)
    fork = base_id if app.dry_run else (app.repo.merge_base(base_id, tip) or base_id)
    argv = ["git", "difftool", "--dir-diff", "--no-prompt", "--trust-exit-code", f"--tool={tool}", fork, tip]
    if app.dry_run:
        if not mark_only:
            app.runner.show("in a scratch repository sharing this one's objects (no filters, hooks or textconv):")
            app.runner.show(Step(tuple(argv), interactive=True))
        app.runner.show(_mark_step(app, tip_ref))
        return
    if mark_only:
        _mark(app, tip_ref, tip)
        return
    if fork == tip or not app.repo.diff(fork, tip, stat=True).strip():
        app.info(f"nothing to review: {_short(tip_ref)} adds nothing to {base_name}")
        return
    risky = _host_code_lines(app, fork, tip)
    if risky:
        app.info("look closely: these commits change files that can run code on this machine:")
        for line in risky:
            app.info(line)
    from git_airlock.reviewrepo import review_repository

    with review_repository(app.location.root, app.location.common_dir, _difftool_config(tool, app.location.root)) as (
        scratch,
        env,
    ):
        result = app.runner.run(Step(tuple(argv), cwd=scratch, env=env, interactive=True, check=False))
    if result.returncode != 0:
        raise AirlockError(
            f"the difftool {tool!r} exited with status {result.returncode}; nothing was marked",
            hint="pick another with --tool or REVIEW_TOOL; `git difftool --tool-help` lists them",
        )
    if confirm(f"Mark {_short(tip_ref)} ({tip[:10]}) as reviewed?", default=False, assume=mark):
        _mark(app, tip_ref, tip)


@click.command("approve")
@click.argument("base", required=False)
@sandbox_branch_option
@pass_app
def approve_command(app: App, base: str | None, sandbox_branch: str | None) -> None:
    """Fetch, then mark the sandbox branch reviewed without opening a tool (`review --mark-only`)."""
    _, _, tip_ref, tip = _prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(_mark_step(app, tip_ref))
        return
    _mark(app, tip_ref, tip)


def _host_code_lines(app: App, base_id: str, tip: str) -> list[str]:
    """`!` lines for commits in base..tip that change files able to run code on this machine."""
    from git_airlock.commitinfo import describe
    from git_airlock.gitcmd import Git

    git = Git(app.location.root)
    return [
        f"  ! {detail.short} {sanitize(path)}: {why}"
        for detail in describe(git, list(reversed(git.rev_list([tip], [base_id]))))
        for path, why in detail.host_code
    ]


def _gate(app: App, base_id: str, tip: str, yes: bool, allow_host_code: bool) -> None:
    """Refuse unreviewed commits and ask about host-code changes before a merge."""
    from git_airlock.gitcmd import Git

    git = Git(app.location.root)
    incoming = git.rev_list([tip], [base_id])
    if not incoming:
        return
    unreviewed = set(ledger.unreviewed(git, ledger.read(git), app.sandbox)) & set(incoming)
    if unreviewed:
        message = f"{len(unreviewed)} of the {len(incoming)} commit(s) to merge were not reviewed"
        if git.config("airlock.requireReview") == "false":
            app.info(f"warning: {message}")
        elif not confirm(f"{message}. Merge them anyway?", default=False, assume=True if yes else None):
            raise AirlockError(message, hint="review them with `git airlock review` (or pass --yes to merge anyway)")
    risky = _host_code_lines(app, base_id, tip)
    if risky:
        app.info("these commits change files that can run code on this machine:")
        for line in risky:
            app.info(line)
        if not confirm("Merge them?", default=False, assume=True if allow_host_code else None):
            raise AirlockError(
                "not merged: the sandbox changed files that can run code on this machine",
                hint="inspect them with `git airlock diff`; pass --allow-host-code to merge them anyway",
            )


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
    base_name, base_id, tip_ref, tip = _prepare(app, base, sandbox_branch)
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
@pass_app
def pr_command(app: App, base: str | None, branch: str | None, sandbox_branch: str | None) -> None:
    """Fetch, point BRANCH (default airlock/<sandbox>) at the sandbox tip, push it, open a PR.

    The push runs on the host with your credentials; the sandbox never gets them.
    Uses `gh pr create` when gh is installed, else prints the compare URL.
    """
    base_name, _, tip_ref, tip = _prepare(app, base, sandbox_branch)
    branch = branch or f"airlock/{app.sandbox}"
    if app.location_or_none is not None and app.repo.remote_url("origin") is None and not app.dry_run:
        raise AirlockError(
            "this repository has no `origin` remote to push to", hint="add one: git remote add origin URL"
        )
    plan = Plan()
    plan.note(f"in-process (libgit2): git branch --force {branch} {_short(tip_ref)}")
    plan.add(
        [
            "git",
            "-C",
            app.location.root,
            "push",
            "--set-upstream",
            "origin",
            f"refs/heads/{branch}:refs/heads/{branch}",
        ],
        interactive=True,
    )
    gh = shutil.which("gh")
    if gh:
        plan.add(
            ["gh", "pr", "create", "--base", base_name, "--head", branch, "--fill"],
            interactive=True,
            cwd=app.location.root,
        )
    if app.dry_run:
        app.runner.execute(plan)
        return
    app.repo.set_branch(branch, tip)
    app.runner.execute(plan)
    if not gh:
        url = compare_url(app.repo.remote_url("origin") or "", base_name, branch)
        click.echo(
            f"open a pull request: {url}"
            if url
            else f"pushed {branch}; open a pull request against {base_name} on your git host"
        )
