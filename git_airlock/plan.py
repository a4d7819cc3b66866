"""Plans: the exact commands an operation runs, printable for ``--dry-run``.

Engines and commands describe work as a :class:`Plan` of :class:`Step`
argument lists. A :class:`Runner` either executes them or, with
``--dry-run``, prints them shell-quoted and runs nothing. Because the same
objects serve both paths, what ``--dry-run`` prints is exactly what a real run
executes. Argument lists only: nothing here ever goes through a shell.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO, TypedDict

from git_airlock import process
from git_airlock.process import CommandFailed, quote_argv

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; only the type checker reads this


@dataclass(frozen=True)
class Step:
    """One external command: its argv, and how to run it."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    interactive: bool = False
    """Inherit the terminal (agents, shells, tmux attach) instead of capturing output."""
    own_terminal: bool = False
    """A sandbox in the foreground: it gets a pseudo-terminal of its own, relayed by the host, never the
    user's terminal device (see :mod:`git_airlock.ptyrelay`). For interactive steps only."""
    check: bool = True
    """Raise when the command fails; off for agents and shells, whose exit status is theirs."""
    tolerate: str | None = None
    """A substring of stderr that means 'already done', treated as success."""
    stdin: str | None = None
    hint: str | None = None

    def render(self) -> str:
        """The step as a shell line, with any extra environment shown as assignments."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in sorted(self.env.items()))
        line = prefix + quote_argv(self.argv)
        if self.cwd:
            line = f"(cd {shlex.quote(self.cwd)} && {line})"
        return line


class StepOptions(TypedDict, total=False):
    """The keyword fields of :class:`Step`, for :meth:`Plan.add`."""

    cwd: str | None
    env: Mapping[str, str]
    interactive: bool
    own_terminal: bool
    check: bool
    tolerate: str | None
    stdin: str | None
    hint: str | None


@dataclass(frozen=True)
class Call:
    """Work done in-process (writing a file, removing a directory): described in a dry run, done in a real one."""

    description: str
    action: Callable[[], object]


@dataclass
class Plan:
    """An ordered list of steps, plus notes printed as comments in dry-run output."""

    steps: list[Step | Call | str] = field(default_factory=list)

    def call(self, description: str, action: Callable[[], object]) -> Plan:
        self.steps.append(Call(description, action))
        return self

    def add(self, argv: Iterable[str], **kwargs: Unpack[StepOptions]) -> Plan:
        self.steps.append(Step(tuple(argv), **kwargs))
        return self

    def note(self, text: str) -> Plan:
        """A line of explanation; in a dry run it is printed as a ``#`` comment."""
        self.steps.append(text)
        return self

    def extend(self, other: Plan) -> Plan:
        self.steps.extend(other.steps)
        return self


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Executes steps for real, or prints them when ``dry_run`` is set."""

    def __init__(self, dry_run: bool = False, out: TextIO | None = None) -> None:
        self.dry_run = dry_run
        self.out = out or sys.stdout

    def show(self, step: Step | Call | str) -> None:
        if isinstance(step, str):
            print(f"# {step}", file=self.out)
        elif isinstance(step, Call):
            print(f"# {step.description}", file=self.out)
        else:
            print(step.render(), file=self.out)

    def execute(self, plan: Plan) -> Result | None:
        """Run every step in order; stop at the first failure (raising). Returns the last command's
        result (None in a dry run, or when the plan ran no command)."""
        last = None
        for step in plan.steps:
            if self.dry_run:
                self.show(step)
            elif isinstance(step, Step):
                last = self.run(step)
            elif isinstance(step, Call):
                step.action()
        return last

    def run(self, step: Step, started: Callable[[], object] | None = None) -> Result:
        """Run one step for real and raise :class:`CommandFailed` on failure.

        ``started`` is called once an interactive step's process exists (``up`` gives its
        sandbox's lock back then: the agent is visibly running, and may run for hours)."""
        result = self._spawn(step, started)
        ok = (
            not step.check
            or result.returncode == 0
            or (step.tolerate is not None and step.tolerate in result.stderr + result.stdout)
        )
        if not ok:
            raise CommandFailed(list(step.argv), result.returncode, result.stderr, step.hint)
        return result

    def query(self, step: Step) -> Result | None:
        """Run a read-only step and return its output; in a dry run print it and return None."""
        if self.dry_run:
            self.show(step)
            return None
        return self._spawn(step)

    def _spawn(self, step: Step, started: Callable[[], object] | None = None) -> Result:
        if not step.interactive:
            proc = process.run(list(step.argv), cwd=step.cwd, env=step.env, input=step.stdin, check=False)
            return Result(proc.returncode, proc.stdout, proc.stderr)
        if step.own_terminal:
            from git_airlock import ptyrelay

            status = ptyrelay.run(list(step.argv), step.cwd, process.scrubbed_env(step.env), started)
            return Result(status, "", "")
        try:
            child = subprocess.Popen(list(step.argv), cwd=step.cwd, env=process.scrubbed_env(step.env))
        except FileNotFoundError as exc:
            raise process.not_found(step.argv[0]) from exc
        with child:
            try:
                if started is not None:
                    started()
                return Result(child.wait(), "", "")
            except BaseException:  # Ctrl-C: as subprocess.run does, the child goes too
                child.kill()
                raise
