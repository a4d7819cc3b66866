"""`pr`: the reviewed sandbox tip on a branch of origin, and a pull request with the report."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.commands.gitops import (
    branch_of,
    check_gate,
    mark_step,
    prepare,
    sandbox_branch_option,
    short_ref,
)
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.plan import Step
from git_airlock.review import gate
from git_airlock.review.provenance import Landing

if TYPE_CHECKING:
    from git_airlock.review.report import Report


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
        app.runner.show(mark_step(app, tip_ref))
        app.runner.show(f"in-process (libgit2): git branch --force {branch} {short_ref(tip_ref)}")
        app.runner.show(push)
        if gh:
            app.runner.show(open_pr)
        return
    vouched = check_gate(app, base_id, tip, yes, allow_host_code, verb="push")
    landing = Landing(app, base_name, base_id, tip_ref, tip, vouched)
    built = landing.report
    app.repo.set_branch(branch, tip)
    if vouched:
        _push_marked(app, push, tip_ref, tip)
    else:
        app.runner.run(push)
    landing.record(f"pushed to origin as {branch}")
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
        with gate.marked_while(Git(app.location.root), app.sandbox, branch_of(app, tip_ref), tip):
            click.echo(f"marked {short_ref(tip_ref)} at {tip[:10]} as reviewed")
            app.runner.run(push)
    except AirlockError:
        app.info(f"the push failed, so the review mark of {short_ref(tip_ref)} is back where it was")
        raise
