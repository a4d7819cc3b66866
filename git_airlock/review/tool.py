"""Which tool `review` shows the sandbox's work with, and whether it can start at all.

A review that showed nothing must not count. git before 2.42 drops a
``--dir-diff`` tool's exit status, so a missing ``code`` used to end in
``eval: code: not found``, exit 0 and, with ``--mark``, a range marked
reviewed. So the tool is resolved the way git resolves it, before anything
runs, and its exit status is recorded by git-airlock itself:

- the choice, highest first: ``--tool``, ``REVIEW_TOOL``/``airlock.reviewTool``
  (or ``sandbox.conf``), git's own ``diff.tool`` then ``merge.tool``, and
  last the default, ``vscode``;
- a tool with a ``difftool.<tool>.cmd`` (or ``mergetool.<tool>.cmd``) runs
  that command: its first word must be a program on PATH (read with shlex,
  never run to test it). ``vscode`` gets git-airlock's own command when the
  user has none, the same on every git (git knows vscode only since 2.47);
- any other name must be one of git's built-in tools, found by git's own
  documented library (``git-mergetool--lib``'s ``get_merge_tool_path``, which
  honours ``difftool.<tool>.path``);
- graphical tools need a graphical session: built-ins that git (2.37 and
  later) describes as "requires a graphical session", and VS Code's ``code``,
  which fails without one (unless the terminal belongs to a VS Code remote
  session, whose ``code`` opens the window on the client). A graphical tool
  that starts anyway and fails is still caught by its exit status.

A tool the user chose that cannot start is an error that names it and why. The
default that cannot start (no ``code``, or no display: SSH sessions, cloud VMs
and CI runners) gives way to the terminal review, which needs nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from git_airlock import process
from git_airlock.errors import AirlockError
from git_airlock.location import RepoLocation
from git_airlock.plan import Runner, Step

TERMINAL = "terminal"
VSCODE = "vscode"
VSCODE_CMD = 'code --wait --new-window --diff "$LOCAL" "$REMOTE"'
OUR_VSCODE = "git-airlock's command for vscode"
VSCODE_CLIS = frozenset({"code", "code-insiders", "codium"})
GRAPHICAL = "requires a graphical session"
"""How git's built-in tools describe themselves when they need a display (``git difftool --tool-help``)."""

RECORDER = "git-airlock-review"
"""A difftool defined only in the review repository: it runs the chosen tool and records how it ended."""
RECORDER_CMD = (
    'initialize_merge_tool "$GIT_AIRLOCK_DIFFTOOL" && run_merge_tool "$GIT_AIRLOCK_DIFFTOOL" false; '
    'status=$?; echo "$status" >"$GIT_AIRLOCK_DIFFTOOL_STATUS"; exit "$status"'
)
"""git's difftool helper evaluates a tool's command with git-mergetool--lib loaded, so this runs the
chosen tool exactly as git would and writes its exit status where git (before 2.42) would drop it."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_WORDS = frozenset(
    {":", ".", "[", "!", "(", "{", "alias", "case", "cd", "command", "echo", "eval", "exec", "exit", "export"}
    | {"false", "for", "if", "printf", "read", "set", "test", "true", "type", "ulimit", "umask", "unset", "while"}
)
"""Shell builtins and keywords a tool command may start with: nothing on PATH to look for."""
_BUILTIN_LOOKUP = """\
TOOL_MODE=diff
. "$(git --exec-path)/git-mergetool--lib"
get_merge_tool_path "$1" || exit 1
setup_tool "$1" 2>/dev/null && diff_cmd_help "$1"
"""
"""Ask git's own library where a built-in tool's program is, and how git describes the tool."""


@dataclass(frozen=True)
class ReviewTool:
    """What `review` will show the work with."""

    name: str
    """A difftool name, or ``terminal``."""
    source: str
    """Where the choice came from, for messages (``--tool``, ``environment (REVIEW_TOOL)``, ``default``)."""
    config: tuple[tuple[str, str], ...] = ()
    """Settings the review repository needs on top of the user's difftool settings."""
    note: str | None = None
    """Why the default gave way to the terminal review."""

    @property
    def in_terminal(self) -> bool:
        return self.name == TERMINAL


def has_display(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a graphical program can open a window from here.

    X11 and Wayland announce themselves; a macOS or Windows login session
    always has a screen, but a macOS SSH session cannot open a window on it.
    """
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return True
    if platform == "darwin":
        return not (environ.get("SSH_CONNECTION") or environ.get("SSH_TTY"))
    return platform == "win32"


def requested(flag: str | None, setting: str, setting_source: str, config: Mapping[str, str]) -> tuple[str, str]:
    """``(tool, where it was chosen)``; the source is ``default`` when nobody chose."""
    if flag:
        return flag, "--tool"
    if setting_source != "default":
        return setting, setting_source
    for key in ("diff.tool", "merge.tool"):
        if config.get(key):
            return config[key], f"git config {key}"
    return setting, "default"


def _tool_command(name: str, config: Mapping[str, str]) -> tuple[str, str] | None:
    """``(command, where it is set)`` when the tool runs a command rather than git's built-in."""
    for key in (f"difftool.{name}.cmd", f"mergetool.{name}.cmd"):
        if config.get(key):
            return config[key], key
    if name == VSCODE:
        return VSCODE_CMD, OUR_VSCODE
    return None


def _program(command: str) -> str | None:
    """The program a shell command line starts, or None when it cannot be known without running it."""
    words = shlex.split(command)
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return ""
    program = os.path.expanduser(os.path.expandvars(words[0]))
    if "$" in program or "`" in program or program in _SHELL_WORDS:
        return None
    return program


def _missing(program: str, environ: Mapping[str, str]) -> bool:
    if "/" in program:
        return not (os.path.isfile(program) and os.access(program, os.X_OK))
    return shutil.which(program, path=environ.get("PATH")) is None


def _command_problem(command: str, where: str, environ: Mapping[str, str], platform: str) -> str | None:
    try:
        program = _program(command)
    except ValueError as exc:
        return f"its command ({where}) cannot be read: {exc}"
    if program is None:
        return None
    if not program:
        return f"its command ({where}) is empty"
    if _missing(program, environ):
        return f"`{program}` ({where}) is not installed or not on PATH"
    vscode_remote = bool(environ.get("VSCODE_IPC_HOOK_CLI"))
    if os.path.basename(program) in VSCODE_CLIS and not (has_display(environ, platform) or vscode_remote):
        return f"`{program}` needs a graphical session and there is none (no $DISPLAY or $WAYLAND_DISPLAY)"
    return None


def _builtin_problem(name: str, repo_root: str, environ: Mapping[str, str], platform: str) -> str | None:
    proc = process.probe(["sh", "-c", _BUILTIN_LOOKUP, "sh", name], cwd=repo_root)
    if proc is None:
        return "git's difftool library could not be asked about it"
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or [""])[-1]
        if not said or said.startswith("Unknown "):  # git 2.48 says "Unknown diff tool X"
            return f"git has no such difftool, and neither difftool.{name}.cmd nor mergetool.{name}.cmd is set"
        return said
    described = proc.stdout.partition("\n")[2]
    if GRAPHICAL in described and not has_display(environ, platform):
        return "it needs a graphical session and there is none (no $DISPLAY or $WAYLAND_DISPLAY)"
    return None


def problem(
    name: str,
    config: Mapping[str, str],
    repo_root: str,
    environ: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
) -> str | None:
    """Why tool ``name`` cannot start here, or None when it can."""
    if name == TERMINAL:
        return None
    if not _NAME.match(name):
        return "that is not a tool name (letters, digits, '.', '_', '+' and '-')"
    command = _tool_command(name, config)
    if command is not None:
        return _command_problem(*command, environ, platform)
    return _builtin_problem(name, repo_root, environ, platform)


def resolve(repo_root: str, flag: str | None, setting: str, setting_source: str) -> ReviewTool:
    """The tool `review` uses; an error when the one the user chose cannot start."""
    from git_airlock.review.scratch import difftool_settings

    config = dict(difftool_settings(repo_root))
    name, source = requested(flag, setting, setting_source, config)
    why = problem(name, config, repo_root)
    if why is None:
        ours = _tool_command(name, config) == (VSCODE_CMD, OUR_VSCODE)
        return ReviewTool(name, source, ((f"difftool.{VSCODE}.cmd", VSCODE_CMD),) if ours else ())
    if source == "default":
        return ReviewTool(
            TERMINAL,
            source,
            note=f"the default review tool, {name}, cannot start here: {why}; "
            "showing the commits in the terminal instead (choose a tool with --tool or REVIEW_TOOL)",
        )
    raise AirlockError(
        f"the review tool {name!r} (from {source}) cannot start: {why}; nothing was shown and nothing was marked",
        hint="install it, choose another with --tool or REVIEW_TOOL (`git difftool --tool-help` lists git's), "
        "or review in the terminal: --tool terminal",
    )


def difftool_step(
    tool: ReviewTool, fork: str, tip: str, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> Step:
    """The ``git difftool`` command: git's own dir-diff machinery, launching the recorder."""
    argv = ("git", "difftool", "--dir-diff", "--no-prompt", "--trust-exit-code", f"--tool={RECORDER}", fork, tip)
    return Step(argv, cwd=cwd, env={**(env or {}), "GIT_AIRLOCK_DIFFTOOL": tool.name}, interactive=True, check=False)


def run_difftool(runner: Runner, location: RepoLocation, tool: ReviewTool, fork: str, tip: str) -> int | None:
    """Run the difftool on ``fork..tip`` in a review repository; its exit status, None when it never ran.

    The status comes from the recorder, so it is known whatever git's version;
    git's own non-zero status (an unknown tool, a failed checkout) counts too.
    """
    from git_airlock.review.scratch import review_repository

    config = [*tool.config, (f"difftool.{RECORDER}.cmd", RECORDER_CMD)]
    with review_repository(location.root, location.common_dir, config) as (scratch, env):
        status_file = os.path.join(scratch, ".git", "airlock-difftool-status")
        step = difftool_step(tool, fork, tip, cwd=scratch, env={**env, "GIT_AIRLOCK_DIFFTOOL_STATUS": status_file})
        result = runner.run(step)
        try:
            with open(status_file, encoding="ascii") as handle:
                recorded = int(handle.read().strip())
        except (OSError, ValueError):
            return None
    return recorded or result.returncode


def outcome(status: int | None) -> str | None:
    """How a difftool run ended, as the end of a sentence; None when it ended well."""
    if status is None:
        return "never ran (git could not start it)"
    if status != 0:
        return f"exited with status {status}"
    return None
