"""`report`: what the agent did while it wrote the commits under review."""

from __future__ import annotations

import json

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.commands.gitops import prepare, sandbox_branch_option
from git_airlock.errors import UsageError


@click.command("report")
@click.argument("base", required=False)
@sandbox_branch_option
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (keys listed in README).")
@click.option("--markdown", is_flag=True, help="The report as Markdown, as `pr` puts it in a pull request.")
@pass_app
def report_command(app: App, base: str | None, sandbox_branch: str | None, as_json: bool, markdown: bool) -> None:
    """Fetch, then report the range under review: the sandbox, engine, agent and policy; each
    commit with its files and the ones that can run code here; and every destination the sandbox
    tried to reach meanwhile, blocked first, credential endpoints marked.
    """
    if as_json and markdown:
        raise UsageError("--json and --markdown are two forms of one report", hint="pick one of them")
    from git_airlock.review import report

    base_name, base_id, tip_ref, tip = prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(f"read {base_name}...{tip_ref}, its commits and the sandbox's connection log")
        return
    built = report.build(app, base_name, base_id, tip_ref, tip)
    if as_json:
        click.echo(json.dumps(built.as_json(), indent=2))
    elif markdown:
        click.echo(built.markdown(), nl=False)
    else:
        click.echo(built.text(), nl=False)
