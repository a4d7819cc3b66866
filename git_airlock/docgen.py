"""Write README's and the man page's reference parts from the code's own tables.

Why: the command list, the options and the settings were written by hand in README.md and
man/git-airlock.1, and drifted from the code (a default that changed, a setting or an option
never added). The code already holds all of it: :data:`git_airlock.cli.COMMANDS` (each
command's short help), the click options of the root group and of every command, and
:data:`git_airlock.settingkeys.KEYS`. This module renders them as Markdown tables for README and
as roff for the man page, between marker comments::

    <!-- generated: NAME -->          .\\" generated: NAME
    ...                               ...
    <!-- end generated -->            .\\" end generated

Everything outside the markers is hand-written and left alone. ``python -m git_airlock.docgen``
rewrites the regions in place; ``python -m git_airlock.docgen --check`` changes nothing and exits
1 naming each stale region (tests/test_docs.py runs it). So adding a command, an option or a
setting to the code and rerunning this is all the documentation needs.

It imports every command module, which the command line avoids at start-up: nothing on that
path may import this module.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from git_airlock.cli import COMMANDS, cli
from git_airlock.commands.agentargs import AgentCommand
from git_airlock.settingkeys import ALIASES, KEYS, REPOSITORY_KEYS, Key

ROOT = Path(__file__).resolve().parent.parent
AGENT_ARGS = "[-- AGENT ARGS]"
"""What commands that start an agent take after their own arguments (see :mod:`git_airlock.commands.agentargs`)."""


@dataclass(frozen=True)
class OptionDoc:
    names: str
    """As ``--help`` shows them: ``-y, --yes``, ``--mark / --no-mark``, ``--tool TOOL``."""
    help: str


@dataclass(frozen=True)
class CommandDoc:
    path: str
    """``diff``, or ``hooks install`` for a subcommand."""
    arguments: str
    """``[BASE]``, ``TASK [-- AGENT ARGS]``, or empty."""
    summary: str
    options: tuple[OptionDoc, ...]

    @property
    def usage(self) -> str:
        return f"{self.path} {self.arguments}".rstrip()


def _options(command: click.Command, ctx: click.Context) -> tuple[OptionDoc, ...]:
    """The visible options of ``command`` (not -h/--help, which every command has)."""
    found = []
    for param in command.params:
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is not None:
            found.append(OptionDoc(record[0], " ".join(record[1].split())))
    return tuple(found)


def _command_doc(path: str, command: click.Command, ctx: click.Context, summary: str) -> CommandDoc:
    pieces = [
        piece for param in command.params if isinstance(param, click.Argument) for piece in param.get_usage_pieces(ctx)
    ]
    if isinstance(command, AgentCommand):
        pieces.append(AGENT_ARGS)
    return CommandDoc(path, " ".join(pieces), summary, _options(command, ctx))


def _subcommand(group: click.Group, ctx: click.Context, name: str) -> click.Command:
    command = group.get_command(ctx, name)
    if command is None:
        raise LookupError(f"{ctx.command_path} lists {name!r} but has no such command")
    return command


def root_context() -> click.Context:
    return click.Context(cli, info_name="git airlock")


def command_docs() -> list[CommandDoc]:
    """Every command in ``COMMANDS`` order with ``COMMANDS``' short help, each group followed by its subcommands."""
    root = root_context()
    docs = []
    for name, (_, summary) in COMMANDS.items():
        command = _subcommand(cli, root, name)
        ctx = click.Context(command, info_name=name, parent=root)
        docs.append(_command_doc(name, command, ctx, summary))
        if isinstance(command, click.Group):
            for sub_name in command.list_commands(ctx):
                sub = _subcommand(command, ctx, sub_name)
                if not sub.hidden:
                    sub_ctx = click.Context(sub, info_name=sub_name, parent=ctx)
                    docs.append(_command_doc(f"{name} {sub_name}", sub, sub_ctx, sub.get_short_help_str(sys.maxsize)))
    return docs


def global_options() -> tuple[OptionDoc, ...]:
    return _options(cli, root_context())


def env_names(key: Key) -> tuple[str, ...]:
    """The environment variable of ``key``, then the other names code-airlock users know for it."""
    if not key.env:
        return ()  # git config only
    return (key.env, *(alias for alias, target in ALIASES.items() if target == key.env))


# Markdown

_CODE_SPAN = re.compile(r"(`[^`]+`)")
_MD_SPECIAL = re.compile(r"[\\*<>|`]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _md(text: str) -> str:
    """Text for a table cell: code spans kept, everything else escaped so it shows as written."""
    return "".join(
        _md_code(part[1:-1]) if _CODE_SPAN.fullmatch(part) else _MD_SPECIAL.sub(r"\\\g<0>", part)
        for part in _CODE_SPAN.split(text)
    )


def _md_code(text: str) -> str:
    return "`" + text.replace("|", r"\|") + "`"  # a table cell ends at |, even in a code span


def _md_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_options(options: tuple[OptionDoc, ...]) -> str:
    return "<br>".join(f"{_md_code(option.names)}: {_md(option.help)}" for option in options)


def markdown_commands() -> str:
    rows = [(_md_code(doc.usage), _md(doc.summary), _md_options(doc.options)) for doc in command_docs()]
    return _md_table(("command", "what it does", "options"), rows)


def markdown_global_options() -> str:
    rows = [(_md_code(option.names), _md(option.help)) for option in global_options()]
    return _md_table(("option", "meaning"), rows)


def markdown_settings() -> str:
    rows = [
        (
            ", ".join(_md_code(name) for name in env_names(key)) or "— (git config only)",
            _md_code(key.git),
            _md_code(key.default) if key.default else "—",
            _md(key.doc),
            "yes" if key.attr in REPOSITORY_KEYS else "no",
        )
        for key in KEYS
    ]
    return _md_table(("environment", "git config", "default", "meaning", "in a repository's `sandbox.conf`"), rows)


# roff (man(7))

_OPTION_LIKE = re.compile(r"(?<![\w-])--?(?:[A-Za-z][\w-]*)?(?![\w-])")
"""``--tmux``, ``-C``, ``--``: their hyphens are typed as ``\\-`` so that what a reader copies from the page works."""
_SYNOPSIS_TOKEN = re.compile(r"(?<![\w-])(?:(--?[A-Za-z][\w-]*)|([A-Z][A-Z0-9_]*))(?![\w-])")
"""An option name (set in bold) or a metavariable such as BASE (in italics)."""


def _roff_escape(text: str) -> str:
    text = _OPTION_LIKE.sub(lambda match: match.group().replace("-", r"\-"), text.replace("\\", r"\e"))
    return "".join(char if char.isascii() else f"\\[u{ord(char):04X}]" for char in text)


def _roff(text: str) -> str:
    """Running text: code spans in bold, everything else escaped."""
    return "".join(
        rf"\fB{_roff_escape(part[1:-1])}\fR" if _CODE_SPAN.fullmatch(part) else _roff_escape(part)
        for part in _CODE_SPAN.split(text)
    )


def _roff_synopsis(text: str) -> str:
    """Option names in bold, metavariables in italics: ``-m, --message TEXT``, ``[BASE]``."""
    out, last = [], 0
    for match in _SYNOPSIS_TOKEN.finditer(text):
        option, metavar = match.groups()
        out += [
            _roff_escape(text[last : match.start()]),
            rf"\fB{_roff_escape(option)}\fR" if option else rf"\fI{metavar}\fR",
        ]
        last = match.end()
    out.append(_roff_escape(text[last:]))
    return "".join(out)


def _roff_line(text: str) -> str:
    """A text line troff cannot mistake for a request."""
    return "\\&" + text if text.startswith((".", "'")) else text


def _roff_options(options: tuple[OptionDoc, ...]) -> list[str]:
    lines = []
    for option in options:
        lines += [".TP", _roff_line(_roff_synopsis(option.names)), _roff_line(_roff(option.help))]
    return lines


def roff_commands() -> str:
    lines = []
    for doc in command_docs():
        tag = rf"\fB{_roff_escape(doc.path)}\fR {_roff_synopsis(doc.arguments)}".rstrip()
        lines += [".TP", tag, _roff_line(_roff(doc.summary))]
        if doc.options:
            lines += [".RS", *_roff_options(doc.options), ".RE"]
    return "\n".join(lines) + "\n"


def roff_global_options() -> str:
    return "\n".join(_roff_options(global_options())) + "\n"


def roff_settings() -> str:
    lines = []
    for key in KEYS:
        names = ", ".join(rf"\fB{_roff_escape(name)}\fR" for name in (*env_names(key), key.git))
        facts = [_roff(key.doc)]
        if key.default:
            facts.append(rf"default \fB{_roff_escape(key.default)}\fR")
        if not key.env:
            facts.append("git config only")
        if key.attr in REPOSITORY_KEYS:
            facts.append("a repository's sandbox.conf may set it")
        lines += [".TP", names, _roff_line("; ".join(facts))]
    return "\n".join(lines) + "\n"


# The documents and their regions


@dataclass(frozen=True)
class Document:
    path: Path
    comment: tuple[str, str]
    """What a comment line starts and ends with in this format."""
    regions: dict[str, Callable[[], str]]
    """Region name -> what renders its content."""

    def marker(self, text: str) -> str:
        return self.comment[0] + text + self.comment[1]

    def regenerate(self, text: str) -> tuple[str, list[str]]:
        """``text`` with every region rendered afresh, and the names of the regions that changed."""
        begin = re.compile(
            "^" + re.escape(self.comment[0]) + r"generated: ([\w-]+)" + re.escape(self.comment[1]) + "$", re.M
        )
        unknown = sorted(set(begin.findall(text)) - set(self.regions))
        if unknown:
            raise DocgenError(
                f"{self.name}: no generator for region {', '.join(unknown)} (known: {', '.join(self.regions)})"
            )
        changed = []
        for name, render in self.regions.items():
            region = re.compile(
                f"^{re.escape(self.marker('generated: ' + name))}\n(.*?)^{re.escape(self.marker('end generated'))}$",
                re.M | re.S,
            )
            found = list(region.finditer(text))
            if len(found) != 1:
                raise DocgenError(
                    f"{self.name}: expected one region {self.marker('generated: ' + name)!r} ... "
                    f"{self.marker('end generated')!r}, found {len(found)}"
                )
            body = render()
            if found[0].group(1) != body:
                changed.append(name)
                text = text[: found[0].start(1)] + body + text[found[0].end(1) :]
        return text, changed

    @property
    def name(self) -> str:
        return os.path.relpath(self.path, ROOT)


class DocgenError(Exception):
    """A document's markers are missing, repeated or unknown."""


DOCUMENTS = (
    Document(
        ROOT / "README.md",
        ("<!-- ", " -->"),
        {"commands": markdown_commands, "global-options": markdown_global_options, "settings": markdown_settings},
    ),
    Document(
        ROOT / "man" / "git-airlock.1",
        ('.\\" ', ""),
        {"commands": roff_commands, "global-options": roff_global_options, "settings": roff_settings},
    ),
)


def stale_regions() -> list[str]:
    """``path: region`` for each region whose content differs from what the code generates."""
    stale = []
    for document in DOCUMENTS:
        _, changed = document.regenerate(document.path.read_text(encoding="utf-8"))
        stale += [f"{document.name}: {name}" for name in changed]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m git_airlock.docgen",
        description="Rewrite the generated reference regions of README.md and man/git-airlock.1 from the code.",
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each stale region")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_regions()
            for region in stale:
                print(f"stale: {region}", file=sys.stderr)
            if stale:
                print("run `python -m git_airlock.docgen` to regenerate them", file=sys.stderr)
            return 1 if stale else 0
        # every document is rendered before any is written, so a missing marker leaves all of them as they were
        rendered = [
            (document, *document.regenerate(document.path.read_text(encoding="utf-8"))) for document in DOCUMENTS
        ]
        for document, text, changed in rendered:
            if changed:
                document.path.write_text(text, encoding="utf-8")
                print(f"rewrote {document.name}: {', '.join(changed)}")
        if not any(changed for _, _, changed in rendered):
            print("up to date: " + ", ".join(document.name for document in DOCUMENTS))
    except DocgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
