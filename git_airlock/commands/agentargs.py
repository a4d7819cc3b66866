"""Commands that start an agent: their own options before ``--``, the agent's arguments after it.

Handing the agent whatever the command did not recognise turned mistakes into agent arguments:
``git airlock up --frob`` started a sandbox and gave ``--frob`` to the agent, and
``git airlock up --agent codex`` ran the default agent with ``--agent codex``. So the
split is explicit: everything after the first ``--`` is the agent's, untouched; everything
before it is parsed as the command's, and anything unknown there is a usage error that says
where it belongs.
"""

from __future__ import annotations

import click

from git_airlock.errors import UsageError

AGENT_ARGS = "agent_args"
"""Where the agent's arguments are kept in the click context's ``meta``."""


class AgentCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            args, ctx.meta[AGENT_ARGS] = args[:split], tuple(args[split + 1 :])
        else:
            ctx.meta[AGENT_ARGS] = ()
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise UsageError(
                f"no such option for `{ctx.command_path}`: {exc.option_name}", _hint(ctx, exc.option_name)
            ) from None
        except click.UsageError as exc:
            if "unexpected extra argument" not in exc.message:
                raise
            raise UsageError(f"`{ctx.command_path}`: {exc.message.lower()}", _hint(ctx, "")) from None


def agent_args(ctx: click.Context) -> list[str]:
    """The arguments that followed ``--``: the agent's."""
    return list(ctx.meta.get(AGENT_ARGS, ()))


def _hint(ctx: click.Context, option: str) -> str:
    from git_airlock.cli import cli

    name = option.partition("=")[0]
    if any(name in param.opts for param in cli.params):
        before = f"`git airlock {name} ... {ctx.info_name}`"
        return f"{name} is an option of git airlock itself: put it before the command, {before}"
    example = option or "ARGS"
    return f"arguments for the agent go after `--`: `{ctx.command_path} -- {example}`"
