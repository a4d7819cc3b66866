"""Starting external commands: the one place that does it.

Every command git-airlock runs (git, bwrap, sbx, tmux, gh, a difftool) is an argument list, never a
shell line of ours with text in it; runs in an environment without the variables that would point
git at another repository; and, when it fails and the caller cares, becomes a :class:`CommandFailed`
that names the command, its exit status and what it said, so the user can run it again by hand
(pre-commit's ``cmd_output``, git-machete's habit of naming the git command that failed).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import IO

from git_airlock.errors import AirlockError

_POINTS_GIT_ELSEWHERE = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_PREFIX",
        "GIT_EXTERNAL_DIFF",
        "GIT_DIFF_OPTS",
    }
)
LONG_ARGUMENT = 200
"""Arguments longer than this (a sandboxed upload-pack command line, say) are shortened in messages;
``--dry-run`` prints them whole."""


def scrubbed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus variables that would point git at another repository, plus ``extra``.

    git sets GIT_DIR and friends for hooks; a command of ours started from one must still work on the
    repository it was asked about.
    """
    env = {key: value for key, value in os.environ.items() if key not in _POINTS_GIT_ELSEWHERE}
    return {**env, **(extra or {})}


def quote_argv(argv: Iterable[str]) -> str:
    """Shell-quote an argument list so it can be pasted into a POSIX shell."""
    return shlex.join(list(argv))


class CommandFailed(AirlockError):
    """An external command exited non-zero: the message carries its command line, status and output."""

    def __init__(self, argv: list[str], returncode: int, detail: str = "", hint: str | None = None):
        shown = [arg if len(arg) <= LONG_ARGUMENT else f"{arg[:40]}...({len(arg)} characters)" for arg in argv]
        message = f"command failed (exit {returncode}): {quote_argv(shown)}"
        if detail:
            message += f"\n{detail.rstrip()}"
        super().__init__(message, hint)
        self.argv = argv
        self.returncode = returncode
        self.detail = detail


def not_found(program: str) -> AirlockError:
    return AirlockError(
        f"{program}: command not found",
        hint=f"install {program}, or check PATH; `git airlock doctor` checks every tool",
    )


def run(
    argv: list[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
    hint: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with its output captured as text (undecodable bytes kept as surrogates), in the
    scrubbed environment plus ``env``; with ``check``, a non-zero exit raises :class:`CommandFailed`.
    A program that is not installed is a clear error, not a traceback."""
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=scrubbed_env(env),
            input=input,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise not_found(argv[0]) from exc
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr, hint)
    return proc


def feed(produce: Callable[[IO[bytes]], None], consumer: list[str], show: Callable[[str], None]) -> int:
    """Run ``consumer`` with what ``produce`` writes as its input, and hand each line of its output
    (stdout and stderr together) to ``show`` as it comes; the consumer's exit status. The consumer
    must read all its input before it says much (``tar -x``, then a command): the input is written
    first."""
    try:
        child = subprocess.Popen(
            consumer, env=scrubbed_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except FileNotFoundError as exc:
        raise not_found(consumer[0]) from exc
    assert child.stdin is not None and child.stdout is not None
    with child:
        try:
            produce(child.stdin)
        except BrokenPipeError:
            pass  # the consumer stopped reading (a failed unpack): its status says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                child.stdin.close()
        for line in child.stdout:
            show(line.decode("utf-8", "surrogateescape").rstrip("\n"))
    return child.wait()


def probe(argv: list[str], cwd: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str] | None:
    """Run a read-only check whose failure is itself the answer (doctor, feature probes): None when the
    program is missing or does not answer in ``timeout`` seconds."""
    try:
        return run(argv, cwd=cwd, check=False, timeout=timeout)
    except (AirlockError, subprocess.TimeoutExpired):
        return None
