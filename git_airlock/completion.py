"""Shell completion for ``git airlock`` and ``git-airlock`` in bash, zsh and fish.

Why it is built this way:

- The program runs as ``git airlock``, and click names its completion variable
  after the program, which would give ``_GIT AIRLOCK_COMPLETE``: a name no shell
  can set. :func:`git_airlock.cli.main` passes its ``COMPLETE_VAR`` instead and,
  only when that variable is set, imports this module, which registers the classes below under click's shell names,
  so click's own protocol (``bash_complete``, ``zsh_source``, ...) runs them.
- One script per shell covers both spellings. ``git airlock ...`` goes through
  git's own completion, which each shell extends in its own way: git's bash
  completion calls ``_git_airlock``; zsh's ``_git`` calls ``_git-airlock`` (and
  lists ``airlock`` among git's commands from the ``#description`` line when the
  script sits in ``$fpath``, or from the ``user-commands`` style); fish's git
  completion hands ``git-*`` commands over only from fish 3.7 on, so the fish
  script completes ``git airlock`` itself (fish shows a candidate given twice
  once). Every script asks ``git-airlock`` about the words after ``airlock``.
- Command names come from :data:`git_airlock.cli.COMMANDS`: completing them
  imports no command module (click's group completion would import every one
  to read its help), and completing a command's options and arguments imports
  that command's module only. To tell which of the two is wanted, this module
  uses click's ``_resolve_context`` and ``_resolve_incomplete``, the steps of
  click's own ``ShellComplete.get_completions`` (unchanged since click 8.0).
- Values that need the repository (sandbox names, branches) come from one plain
  ``git`` call in the directory ``-C`` names: no pygit2, no App, nothing written.
- A line that cannot be parsed (an unknown command earlier on it) gives no
  candidates rather than an error message in the middle of the user's line.
- Parameters declared in command modules without a completer of their own get
  one here by name (:data:`BY_PARAMETER`), so those modules need not import this one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar

import click
from click.shell_completion import (
    BashComplete,
    CompletionItem,
    FishComplete,
    ShellComplete,
    ZshComplete,
    _resolve_context,
    _resolve_incomplete,
    add_completion_class,
)

from git_airlock.errors import AirlockError, UsageError

SHELLS = ("bash", "zsh", "fish")

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _matching(values: Iterable[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(value) for value in values if value.startswith(incomplete)]


def _git_lines(ctx: click.Context, *args: str) -> list[str]:
    """The output lines of a read-only git command in the repository the command line names, or none."""
    from git_airlock.process import probe

    directory = ctx.find_root().params.get("directory")
    proc = probe(["git", *(["-C", directory] if directory else []), *args])
    return proc.stdout.splitlines() if proc is not None and proc.returncode == 0 else []


def complete_command_names(ctx: click.Context, param: click.Parameter | None, incomplete: str) -> list[CompletionItem]:
    """git-airlock's commands, with their short help, from the static table (no command module imported)."""
    from git_airlock.cli import COMMANDS

    return [CompletionItem(name, help=text) for name, (_, text) in COMMANDS.items() if name.startswith(incomplete)]


def complete_directories(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Let the shell complete a directory."""
    return [CompletionItem(incomplete, type="dir")]


def complete_agents(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from git_airlock.agents import AGENTS

    return _matching(AGENTS, incomplete)


def complete_engines(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from git_airlock.modes import ENGINE_CHOICES

    return _matching(ENGINE_CHOICES, incomplete)


def complete_sandboxes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The repository's sandboxes: its git remotes named ``sandbox-<name>``."""
    from git_airlock.review.ledger import REMOTE_PREFIX

    remotes = _git_lines(ctx, "remote")
    return _matching((r.removeprefix(REMOTE_PREFIX) for r in remotes if r.startswith(REMOTE_PREFIX)), incomplete)


def complete_branches(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The repository's local branches."""
    return _matching(_git_lines(ctx, "for-each-ref", "--format=%(refname:short)", "refs/heads/"), incomplete)


def complete_review_tools(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``terminal``, ``vscode``, the difftools the user defined, and git's built-in tools.

    git's built-ins are the files of its ``mergetools`` directory: ``git difftool
    --tool-help`` would say which are installed, but takes about half a second.
    """
    from git_airlock.review.tool import TERMINAL, VSCODE

    names = {TERMINAL, VSCODE}
    for key in _git_lines(ctx, "config", "--name-only", "--get-regexp", r"^(diff|merge)tool\..+\.cmd$"):
        names.add(key.partition(".")[2].rpartition(".")[0])
    exec_path = _git_lines(ctx, "--exec-path")
    if exec_path:
        with contextlib.suppress(OSError):
            names.update(os.listdir(os.path.join(exec_path[0], "mergetools")))
    return _matching(sorted(names), incomplete)


BY_PARAMETER: dict[str, Completer] = {
    "directory": complete_directories,
    "agent": complete_agents,
    "sandbox_name": complete_sandboxes,
    "engine": complete_engines,
    "base": complete_branches,
    "tool": complete_review_tools,
}
"""Completers by parameter name, for parameters declared without one (the root group's -C, --agent,
--name and --engine; BASE of diff, review, merge, pr and approve; review's --tool): the modules that
declare them, the CLI's start-up among them, need not import this one. A parameter's own completer or
choices come first."""


def _candidates(comp: ShellComplete, args: list[str], incomplete: str) -> list[CompletionItem]:
    """What click would offer after ``args``, except the root group's command names come from the static table."""
    cli = comp.cli
    ctx = _resolve_context(cli, comp.ctx_args, comp.prog_name, args)
    obj, incomplete = _resolve_incomplete(ctx, args, incomplete)
    if obj is cli and not incomplete.startswith("-"):
        return complete_command_names(ctx, None, incomplete)
    items = obj.shell_complete(ctx, incomplete)
    if not items and isinstance(obj, click.Parameter) and obj.name in BY_PARAMETER:
        items = BY_PARAMETER[obj.name](ctx, obj, incomplete)
    return items


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


class _Candidates(ShellComplete):
    whole_word: ClassVar[bool] = False
    """Whether the shell replaces the whole word, so the value of ``--opt=va`` must come back as
    ``--opt=value`` (zsh, fish); bash breaks the word at ``=`` and replaces the value only."""

    script: ClassVar[str]

    def source(self) -> str:
        return self.script

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        try:
            items = _candidates(self, args, incomplete)
        except (click.ClickException, AirlockError):
            return []
        if self.whole_word and incomplete.startswith("-") and "=" in incomplete:
            prefix = incomplete.partition("=")[0] + "="
            return [CompletionItem(prefix + item.value, type=item.type, help=item.help) for item in items]
        return items


BASH_SCRIPT = r"""# git-airlock completion for bash: `git-airlock <TAB>` and `git airlock <TAB>`.

# Ask git-airlock. $1: what to put after each candidate (git's completion runs with nospace),
# $2: the index of the word to complete, then the words, git-airlock first.
_git_airlock_reply () {
    local suffix=$1 cword=$2 IFS=$'\n' type value
    shift 2
    COMPREPLY=()
    while IFS=, read -r type value; do
        case $type in
        dir) compopt -o dirnames ;;
        plain) COMPREPLY+=("$value$suffix") ;;
        esac
    done < <(COMP_WORDS="$*" COMP_CWORD=$cword _GIT_AIRLOCK_COMPLETE=bash_complete git-airlock)
}

# `git airlock ...`: git's bash completion calls this with its words, cword, __git_cmd_idx
# (where `airlock` is) and __git_C_args (git's -C options, passed on as git-airlock's own) set.
_git_airlock () {
    local at=${__git_cmd_idx:-1}
    _git_airlock_reply " " $((cword - at + ${#__git_C_args[@]})) git-airlock "${__git_C_args[@]}" "${words[@]:at+1}"
}

# `git-airlock ...`
_git_airlock_complete () {
    local words cword
    if declare -F _get_comp_words_by_ref >/dev/null; then
        _get_comp_words_by_ref -n =: words cword
    else
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    fi
    _git_airlock_reply "" "$cword" "${words[@]}"
}

complete -F _git_airlock_complete git-airlock
"""

ZSH_SCRIPT = r"""#compdef git-airlock
#description run coding agents in sandboxes and review what they commit
# git-airlock completion for zsh: `git-airlock <TAB>` and `git airlock <TAB>` (zsh's _git calls
# _git-airlock with $words starting at `airlock`).

_git-airlock () {
    local -a response plain described directory
    local type value help dirs ret=1
    (( $+commands[git-airlock] )) || return 1
    # `git -C DIR airlock`: _git leaves DIR in $opt_args; pass it on as git-airlock's own -C
    (( $+opt_args[-C] )) && directory=(-C "$opt_args[-C]")
    response=("${(@f)$(COMP_WORDS="$words[1] $directory $words[2,-1]" COMP_CWORD=$((CURRENT - 1 + $#directory)) \
        _GIT_AIRLOCK_COMPLETE=zsh_complete git-airlock)}")
    for type value help in "${response[@]}"; do
        case $type in
        (dir) dirs=1 ;;
        (plain) if [[ $help == _ ]]; then plain+=("$value"); else described+=("$value:$help"); fi ;;
        esac
    done
    (( $#described )) && _describe -V airlock described -U && ret=0
    (( $#plain )) && compadd -U -V airlock -a plain && ret=0
    [[ -n $dirs ]] && _path_files -/ && ret=0
    return ret
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoloaded from $fpath
    _git-airlock "$@"
else
    # eval "$(git-airlock completion zsh)", after compinit
    compdef _git-airlock git-airlock
    # `git air<TAB>`: _git offers the commands this style names
    () {
        local -a known
        zstyle -a ':completion:*:*:git:*' user-commands known
        zstyle ':completion:*:*:git:*' user-commands ${known:#airlock:*} \
            'airlock:run coding agents in sandboxes and review what they commit'
    }
fi
"""

FISH_SCRIPT = r"""# git-airlock completion for fish: `git-airlock <TAB>` and `git airlock <TAB>`.

# Ask git-airlock about its words ($argv, unescaped) and the token under the cursor.
function __git_airlock_complete
    set -l token (commandline -ct)
    set -l words git-airlock (string escape -- $argv) $token
    for line in (env _GIT_AIRLOCK_COMPLETE=fish_complete COMP_WORDS="$words" COMP_CWORD="$token" git-airlock)
        switch $line
            case 'dir*'
                __fish_complete_directories $token
            case 'plain*'
                string replace -r '^plain\t' '' -- $line
        end
    end
end

# The words after `git [git options] airlock`, git's -C options first (as git-airlock's own);
# fails unless that is what the line holds.
function __git_airlock_words
    set -l words (commandline -opc)[2..]
    set -l directories
    while set -q words[1]
        switch $words[1]
            case -C
                set -a directories -C $words[2]
                set -e words[1..2]
            case -c --git-dir --work-tree --namespace --config-env
                set -e words[1..2]
            case '-*'
                set -e words[1]
            case airlock
                printf '%s\n' $directories $words[2..]
                return 0
            case '*'
                return 1
        end
    end
    return 1
end

complete -c git-airlock -f -a '(__git_airlock_complete (commandline -opc)[2..])'
# fish before 3.7 neither lists nor completes git-* commands after `git`
complete -c git -f -n __fish_use_subcommand -a airlock -d 'run coding agents in sandboxes'
complete -c git -f -n '__git_airlock_words >/dev/null' -a '(__git_airlock_complete (__git_airlock_words))'
"""


@add_completion_class
class BashCompletion(_Candidates, BashComplete):
    script = BASH_SCRIPT

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.type},{item.value}"


@add_completion_class
class ZshCompletion(_Candidates, ZshComplete):
    script = ZSH_SCRIPT
    whole_word = True

    def format_completion(self, item: CompletionItem) -> str:
        """Three lines: type, value, help or ``_``; ``_describe`` splits value and help at the first unescaped colon."""
        help_ = _one_line(item.help)
        value = item.value.replace(":", r"\:") if help_ else item.value
        return f"{item.type}\n{value}\n{help_ or '_'}"


@add_completion_class
class FishCompletion(_Candidates, FishComplete):
    script = FISH_SCRIPT
    whole_word = True

    def format_completion(self, item: CompletionItem) -> str:
        """One line: type, value and help, tab-separated; the script prints value and help as fish wants them."""
        help_ = _one_line(item.help)
        return f"{item.type}\t{item.value}" + (f"\t{help_}" if help_ else "")


def script(shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    return {"bash": BASH_SCRIPT, "zsh": ZSH_SCRIPT, "fish": FISH_SCRIPT}[shell]


def shell_from_env(environ: Mapping[str, str]) -> str:
    """The shell ``$SHELL`` names, for ``git airlock completion`` without an argument."""
    login_shell = environ.get("SHELL", "")
    name = os.path.basename(login_shell)
    if name not in SHELLS:
        said = f"$SHELL is {login_shell!r}" if login_shell else "$SHELL is not set"
        raise UsageError(
            f"cannot tell which shell to complete for: {said}",
            hint="name it: `git airlock completion bash`, `zsh` or `fish`",
        )
    return name
