"""``git airlock``: the root command group.

Start-up is kept lean because ``git airlock -h`` and the pre-push hook run
often: command modules are imported only when their command runs, and the
command list in ``--help`` comes from the static table below rather than from
importing every module.
"""

from __future__ import annotations

import os
import sys

import click

from git_airlock import __version__
from git_airlock.errors import AirlockError, UsageError

COMPLETE_VAR = "_GIT_AIRLOCK_COMPLETE"
"""What the completion scripts set to ask for candidates; click's own name for it would be built from the
program's name, ``git airlock``, with a space no shell can set."""
INTERNAL_ERROR = 3
"""The exit status of a failure nobody planned for (1 stays "a problem you can fix")."""
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# name -> (module under git_airlock.commands, short help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("lifecycle", "Create the sandbox in clone mode and start the agent."),
    "run": ("lifecycle", "Start the agent headless on a task, then review its work."),
    "ls": ("lscmd", "List every sandbox of this repository, with a conflict forecast."),
    "status": ("status", "Show the sandbox, its tmux session, remote and new commits."),
    "attach": ("lifecycle", "Attach to (or switch to) the sandbox's tmux session."),
    "shell": ("lifecycle", "Open an interactive shell inside the sandbox."),
    "stop": ("lifecycle", "Stop the sandbox, keeping its VM and commits."),
    "rm": ("lifecycle", "Remove the sandbox (offers to fetch its commits first)."),
    "commit": ("lifecycle", "Commit work the agent left uncommitted (bwrap engine)."),
    "save": ("savecmd", "Keep the agent's uncommitted work on the host, while it runs."),
    "fetch": ("gitops", "Fetch the sandbox's commits into refs/remotes/sandbox-<name>/."),
    "diff": ("gitops", "Fetch, then show what the sandbox changed against a base branch."),
    "review": ("gitops", "Fetch, then review the changes in your difftool or the terminal."),
    "merge": ("mergecmd", "Fetch, then merge the sandbox branch into a base branch."),
    "pr": ("prcmd", "Fetch, push the reviewed sandbox tip to a branch on origin, open a PR."),
    "log": ("ledgercmds", "List sandbox commits nobody has reviewed yet."),
    "approve": ("gitops", "Mark the sandbox's commits reviewed without opening a tool."),
    "report": ("reportcmd", "Fetch, then report what the agent did: commits, host code, network."),
    "hooks": ("ledgercmds", "Install, remove or inspect the pre-push hook."),
    "net": ("network", "Show allowed and blocked network hosts."),
    "lockdown": ("network", "Let this sandbox reach only the ALLOW hosts (--global: every sandbox)."),
    "unlock": ("network", "Undo this sandbox's lockdown (--global: reset every sandbox's policy)."),
    "agents": ("agentcmds", "Install, update or list agent CLIs for every bwrap sandbox."),
    "secret": ("secretcmds", "Keep model API credentials on the host (set, ls, rm)."),
    "presets": ("secretcmds", "Show the host presets and where each credential may go."),
    "init": ("setup", "Write a starter AGENTS.md if the repository has none."),
    "doctor": ("doctor", "Check that everything git-airlock needs is in place."),
    "config": ("setup", "Show every effective setting and where it came from."),
    "completion": ("setup", "Print a shell completion script (bash, zsh or fish)."),
    "help": ("setup", "Show help for git-airlock or one of its commands."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = __import__(f"git_airlock.commands.{entry[0]}", fromlist=["_"])
        command: click.Command = getattr(module, cmd_name.replace("-", "_") + "_command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            from difflib import get_close_matches

            close = get_close_matches(name, COMMANDS, n=1)
            hint = f"did you mean `git airlock {close[0]}`?" if close else "`git airlock -h` lists the commands"
            raise UsageError(f"unknown command {name!r}", hint=hint)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option("-C", "directory", metavar="PATH", help="Run as if started in PATH.")
@click.option("--dry-run", is_flag=True, help="Print every sbx, git and tmux command; run nothing.")
@click.option("--agent", metavar="NAME", help="Agent to run (claude, codex, opencode, gemini, ...).")
@click.option("--name", "sandbox_name", metavar="NAME", help="Sandbox name (several sandboxes per repo).")
@click.option("--engine", metavar="NAME", help="Sandbox engine: sbx, bwrap or auto (default).")
@click.option("--tmux", is_flag=True, help="Run `up`/`run` inside a host tmux session and attach.")
@click.option("--tmux-detached", is_flag=True, help="Like --tmux, without attaching.")
@click.option(
    "--seed-config", "--seed-user-config", is_flag=True, help="Copy the agent's user-level instruction files in."
)
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(__version__, "--version", prog_name="git-airlock")
@click.pass_context
def cli(
    ctx: click.Context,
    directory: str | None,
    dry_run: bool,
    agent: str | None,
    sandbox_name: str | None,
    engine: str | None,
    tmux: bool,
    tmux_detached: bool,
    seed_config: bool,
    debug: bool,
) -> None:
    """Run coding agents in disposable sandboxes and review what they commit.

    The agent works in a private clone; your repository is read-only to it.
    Its commits come back only through git: fetch, diff, review, merge, pr.
    """
    from git_airlock.app import App

    ctx.obj = App(
        flags={"agent": agent, "sandbox_name": sandbox_name, "engine": engine},
        directory=directory,
        dry_run=dry_run,
        tmux=tmux or tmux_detached,
        tmux_detached=tmux_detached,
        seed_config=seed_config,
        debug=debug,
    )


def _report(error: AirlockError) -> None:
    from git_airlock.terminal import sanitize

    click.echo(f"error: {sanitize(error.message)}", err=True)
    if error.hint:
        click.echo(f"hint: {sanitize(error.hint)}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: translate every failure into a message and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("GIT_AIRLOCK_DEBUG") == "1"
    if os.environ.get(COMPLETE_VAR):
        from git_airlock import completion  # noqa: F401  (registers its shells with click; only when asked)
    try:
        code = cli.main(args=args, prog_name="git airlock", complete_var=COMPLETE_VAR, standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        # click turns Ctrl-C (and end of input at a prompt) into Abort
        click.echo("\ninterrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "git airlock"
        _report(UsageError(exc.format_message(), hint=f"`{command} -h` shows the usage"))
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AirlockError as exc:
        if debug:
            raise
        _report(exc)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        from git_airlock.terminal import sanitize

        click.echo(f"error: internal error: {type(exc).__name__}: {sanitize(str(exc))}", err=True)
        click.echo("hint: rerun with --debug for a traceback, and report it", err=True)
        sys.exit(INTERNAL_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
