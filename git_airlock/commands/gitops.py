"""Bringing the sandbox's work home: fetch, diff, review, merge, pr."""

from __future__ import annotations

import re
import shutil
import subprocess

import click

from git_airlock.app import App
from git_airlock.commands._shared import (
    base_commit,
    fetch,
    resolve_base,
    resolve_tip,
    safe_git,
)
from git_airlock.errors import AirlockError
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
    return ref.removeprefix("refs/remotes/")


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
        click.echo(f"{commit[:10]} {sanitize(_short(ref))}")
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


def _difftool_config(tool: str) -> list[str]:
    """`vscode` is not a difftool git knows before 2.42: define it unless the user did."""
    if tool != "vscode":
        return []
    proc = subprocess.run(["git", "config", "--get", "difftool.vscode.cmd"], capture_output=True, text=True)
    if proc.stdout.strip():
        return []
    return ["-c", 'difftool.vscode.cmd=code --wait --new-window --diff "$LOCAL" "$REMOTE"']


@click.command("review")
@click.argument("base", required=False)
@sandbox_branch_option
@click.option("--tool", metavar="TOOL", help="git difftool to use (default: REVIEW_TOOL or vscode).")
@pass_app
def review_command(app: App, base: str | None, sandbox_branch: str | None, tool: str | None) -> None:
    """Fetch, then open `git difftool --dir-diff` on what the sandbox changed.

    Compares two commits, so your working tree is never touched.
    """
    tool = tool or app.settings.review_tool
    base_name, base_id, tip_ref, tip = _prepare(app, base, sandbox_branch)
    fork = base_id if app.dry_run else (app.repo.merge_base(base_id, tip) or base_id)
    argv = [
        *safe_git(*_difftool_config(tool)),
        "-C",
        app.location.root,
        "difftool",
        "--dir-diff",
        "--no-prompt",
        f"--tool={tool}",
        fork,
        tip,
    ]
    if app.dry_run:
        app.runner.show(Step(tuple(argv), interactive=True))
        return
    if fork == tip or not app.repo.diff(fork, tip, stat=True).strip():
        app.info(f"nothing to review: {_short(tip_ref)} adds nothing to {base_name}")
        return
    result = app.runner.run(Step(tuple(argv), interactive=True, check=False))
    if result.returncode != 0:
        raise AirlockError(
            f"the difftool {tool!r} exited with status {result.returncode}",
            hint="pick another with --tool or REVIEW_TOOL; `git difftool --tool-help` lists them",
        )


@click.command("merge")
@click.argument("base", required=False)
@sandbox_branch_option
@pass_app
def merge_command(app: App, base: str | None, sandbox_branch: str | None) -> None:
    """Fetch, then merge the sandbox branch into BASE (default: the checked-out branch).

    Fast-forwards when possible. A BASE that is not checked out is updated
    without touching the working tree. On a conflict nothing changes: your
    branch, index and working tree stay exactly as they were.
    """
    base_name, _, tip_ref, tip = _prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(f"in-process (libgit2): git merge {_short(tip_ref)} into {base_name}")
        return
    message = f"Merge sandbox {app.sandbox} ({_short(tip_ref)}) into {base_name}"
    outcome = app.repo.merge(base_name, tip, message)
    if outcome.kind == "up-to-date":
        click.echo(f"{base_name} already contains {_short(tip_ref)}")
        return
    where = "" if outcome.updated_worktree else " (working tree untouched: branch not checked out)"
    click.echo(f"{base_name}: {outcome.kind} {outcome.old[:10]}..{outcome.new[:10]}{where}")


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
