"""Setting up: init, config, completion, help."""

from __future__ import annotations

import json
import os

import click

from git_airlock import completion
from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.errors import AirlockError
from git_airlock.settingkeys import KEYS

AGENTS_TEMPLATE = """\
# AGENTS.md

Instructions for coding agents working in this repository.

## How you run here
- You work in a private clone inside a sandbox. The host repository is read-only to you.
- Commit your work in small steps with clear messages; a person reviews every commit
  (`git airlock review`) before anything is merged or pushed.
- Do not push, and do not try to reach hosts the network policy does not allow.

## The project
- What it is:
- How to install dependencies:
- How to run the tests:
- Conventions (style, layout, naming):
"""


@click.command("init")
@pass_app
def init_command(app: App) -> None:
    """Write a starter AGENTS.md, only if the repository has none."""
    path = os.path.join(app.location.root, "AGENTS.md")
    if os.path.lexists(path):
        app.info("AGENTS.md already exists; left unchanged")
        return
    if app.dry_run:
        app.runner.show(f"write {path}")
        return
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(AGENTS_TEMPLATE)
    app.info(f"wrote {path}; fill in the project section, then commit it")


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def config_command(app: App, as_json: bool) -> None:
    """Show every effective setting, its value and where it came from.

    Precedence: flags > environment > sandbox.conf (repository, then user) > git config airlock.* > default.
    """
    settings = app.settings
    rows = [(key.env, key.git, settings.values[key.attr], settings.sources[key.attr]) for key in KEYS]
    if app.location_or_none is not None:
        rows.append(("(derived)", "", app.sandbox, "sandbox name in use"))
    if as_json:
        click.echo(
            json.dumps(
                [{"env": e or None, "git": g, "value": v, "source": s} for e, g, v, s in rows],
                indent=2,
            )
        )
        return
    width = max(len(r[0] or r[1]) for r in rows)
    for env, git, value, source in rows:
        shown = value if value != "" else "(unset)"
        if not env:  # a setting only git config holds: its key is its name
            env, git = git, ""
        click.echo(f"{env:<{width}}  {shown:<28}  {source}{'  [' + git + ']' if git else ''}")


@click.command("completion")
@click.argument("shell", required=False, metavar="[SHELL]", type=click.Choice(completion.SHELLS))
def completion_command(shell: str | None) -> None:
    """Print the completion script for SHELL (default: the shell $SHELL names).

    Each script completes both `git airlock ...` and `git-airlock ...`.

    \b
    bash: eval "$(git-airlock completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(git-airlock completion zsh)"    (in ~/.zshrc, after compinit)
    fish: git-airlock completion fish > ~/.config/fish/conf.d/git-airlock.fish
    """
    click.echo(completion.script(shell or completion.shell_from_env(os.environ)), nl=False)


@click.command("help")
@click.argument("command", required=False, shell_complete=completion.complete_command_names)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show help for git-airlock, or for COMMAND."""
    root = ctx.parent
    assert root is not None
    if command is None:
        click.echo(root.get_help())
        return
    group = root.command
    assert isinstance(group, click.Group)
    sub = group.get_command(root, command)
    if sub is None:
        raise AirlockError(f"unknown command {command!r}", hint="`git airlock -h` lists the commands")
    with click.Context(sub, info_name=command, parent=root) as sub_ctx:
        click.echo(sub.get_help(sub_ctx))
