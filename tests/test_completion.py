"""Shell completion, run the way each shell runs it.

Every case types a command line into the real completion machinery of a shell,
with the script ``git airlock completion SHELL`` prints:

- bash: git's own bash completion (from the git package) and the script are
  sourced, COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT are set as bash sets them
  (bash breaks words at ``=``), then ``__git_wrap__git_main`` (what bash runs for
  ``git``, and which calls ``_git_airlock``) or ``_git_airlock_complete`` (what
  bash runs for ``git-airlock``); COMPREPLY is the answer.
- zsh: an interactive ``zsh -f`` on a pseudo-terminal (zpty) runs compinit and
  the script, the line is typed and then a TAB; ``compadd`` is wrapped to write
  every candidate to a file (the technique of zsh-capture-completion).
- fish: ``complete -C LINE``, which runs fish's completion for LINE, including
  fish's own git completion.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Env, airlock, git
from git_airlock.cli import COMMANDS

SHELLS = ("bash", "zsh", "fish")
FORMS = ("git airlock", "git-airlock")
GIT_BASH_COMPLETION = Path("/usr/share/bash-completion/completions/git")


@pytest.fixture
def repo(project: Path) -> Path:
    """Branches main and feature; sandboxes foo and bar (their sandbox-<name> remotes) next to origin."""
    git(project, "branch", "feature")
    for remote in ("sandbox-foo", "sandbox-bar", "origin"):
        git(project, "remote", "add", remote, f"https://example.invalid/{remote}.git")
    return project


def _require(program: str) -> None:
    assert shutil.which(program), f"{program} is not installed (README.md's install command installs it)"


def _script(shell: str, tmp: Path) -> Path:
    result = airlock("completion", shell, cwd=tmp)
    assert result.returncode == 0, result.stderr
    path = tmp / f"airlock-completion.{shell}"
    path.write_text(result.stdout)
    return path


# -- bash --------------------------------------------------------------------------------------

BASH = """\
for file in "${SOURCES[@]}"; do source "$file"; done
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE=$LINE
COMP_POINT=${#LINE}
$FUNCTION
printf '%s\\n' "${COMPREPLY[@]}"
"""


def _bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash fills it: words split at blanks and around ``=``, an empty last word after a blank."""
    words: list[str] = []
    for word in line.split(" "):
        words.extend([part for part in re.split(r"(=)", word) if part] if "=" in word else [word])
    return words


def bash_complete(line: str, cwd: Path, script: Path, git_completion: bool = True) -> list[str]:
    """COMPREPLY for ``line`` with the cursor at its end."""
    _require("bash")
    sources = [str(GIT_BASH_COMPLETION)] if git_completion else []
    function = "__git_wrap__git_main" if line.startswith("git ") else "_git_airlock_complete"
    program = f"SOURCES=({shlex.join([*sources, str(script)])})\nFUNCTION={function}\n{BASH}"
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", *_bash_words(line)],
        cwd=cwd,
        env={**os.environ, "LINE": line},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [reply for reply in proc.stdout.split("\n") if reply]


# -- zsh ---------------------------------------------------------------------------------------

ZSH_INIT = r"""
PROMPT='' RPROMPT=''
fpath=($AIRLOCK_FPATH $fpath)
autoload -Uz compinit && compinit -u -D
[[ -n $AIRLOCK_SCRIPT ]] && eval "$(<$AIRLOCK_SCRIPT)"
bindkey '^I' complete-word
# every candidate compadd adds goes to $CAPTURE; calls that only ask (-O, -A, -D) pass through
compadd () {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a hits
    builtin compadd -A hits "$@"
    (( $#hits )) && print -rl -- $hits >> $CAPTURE
    builtin compadd "$@"
}
_airlock_test_done () { print -r -- '<done>' >> $CAPTURE }
comppostfuncs=(_airlock_test_done)
print -r -- '<ready>' >> $CAPTURE
"""

ZSH_DRIVER = r"""
zmodload zsh/zpty zsh/zselect
zpty shell zsh -f -i
zpty -w shell "source ${(q)1}"
repeat 200; do grep -qs '<ready>' $CAPTURE && break; zselect -t 5; done
zpty -w -n shell "$2"$'\t'
repeat 400; do grep -qs '<done>' $CAPTURE && break; zselect -t 5; done
zpty -d shell
"""


def zsh_complete(line: str, cwd: Path, script: Path | None = None, fpath: Path | None = None) -> list[str]:
    """The candidates zsh adds when TAB is pressed after ``line``: eval'ed ``script``, or an ``fpath`` directory."""
    _require("zsh")
    with tempfile.TemporaryDirectory() as scratch:
        init = Path(scratch, "init.zsh")
        init.write_text(ZSH_INIT)
        capture = Path(scratch, "capture.txt")
        env = {
            **os.environ,
            "CAPTURE": str(capture),
            "AIRLOCK_SCRIPT": str(script or ""),
            "AIRLOCK_FPATH": str(fpath or ""),
        }
        argv = ["zsh", "-f", "-c", ZSH_DRIVER, "zsh", str(init), line]
        subprocess.run(argv, cwd=cwd, env=env, timeout=60, check=True)
        lines = capture.read_text().splitlines()
    assert "<done>" in lines, f"zsh did not complete {line!r}: {lines}"
    return [candidate for candidate in lines if candidate not in ("<ready>", "<done>")]


# -- fish --------------------------------------------------------------------------------------


def fish_complete(line: str, cwd: Path, script: Path | None = None) -> list[str]:
    """The candidates ``complete -C`` gives for ``line`` (descriptions dropped)."""
    _require("fish")
    program = ("source $argv[2]; " if script else "") + "complete -C $argv[1]"
    proc = subprocess.run(
        ["fish", "-c", program, line, *([str(script)] if script else [])],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [candidate.partition("\t")[0] for candidate in proc.stdout.splitlines()]


COMPLETERS: dict[str, Callable[[str, Path, Path], list[str]]] = {
    "bash": bash_complete,
    "zsh": zsh_complete,
    "fish": fish_complete,
}


@dataclass
class Shell:
    name: str
    script: Path

    def complete(self, line: str, cwd: Path) -> list[str]:
        """The candidates for ``line``, the script loaded as README.md says (sourced, eval'ed)."""
        return COMPLETERS[self.name](line, cwd, self.script)

    def names(self, line: str, cwd: Path) -> set[str]:
        """The candidates, without the space bash's `git airlock` form ends each with."""
        return {candidate.rstrip(" ") for candidate in self.complete(line, cwd)}


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest, hermetic: Env) -> Shell:
    return Shell(request.param, _script(request.param, hermetic.tmp))


# -- what every shell offers, in both forms ----------------------------------------------------

CASES = [
    ("", set(COMMANDS)),
    ("di", {"diff"}),
    ("diff ", {"feature", "main"}),
    ("review --tool term", {"terminal"}),
    ("--agent co", {"codex", "copilot"}),
    ("--engine ", {"auto", "sbx", "bwrap"}),
    ("--name ", {"bar", "foo"}),
    ("--dr", {"--dry-run"}),
    ("--agent codex --name foo merge ", {"feature", "main"}),
    ("diff --st", {"--stat"}),
    ("up --y", {"--yes"}),
    ("help me", {"merge"}),
    ("completion ", set(SHELLS)),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("words", "expected"), CASES, ids=[words or "commands" for words, _ in CASES])
def test_completes(shell: Shell, repo: Path, form: str, words: str, expected: set[str]) -> None:
    assert shell.names(f"{form} {words}", repo) == expected


@pytest.mark.parametrize("form", FORMS)
def test_option_value_after_equals(shell: Shell, repo: Path, form: str) -> None:
    # bash breaks the word at `=` and replaces only what follows it; zsh and fish replace the whole word
    expected = {"codex", "copilot"} if shell.name == "bash" else {"--agent=codex", "--agent=copilot"}
    assert shell.names(f"{form} --agent=co", repo) == expected


def test_git_offers_airlock_as_a_command(shell: Shell, repo: Path) -> None:
    assert "airlock" in shell.names("git airl", repo)


def test_git_dash_c_is_passed_on(shell: Shell, repo: Path, hermetic: Env) -> None:
    elsewhere = hermetic.tmp / "elsewhere"
    elsewhere.mkdir()
    assert shell.names(f"git -C {repo} airlock --name ", elsewhere) == {"bar", "foo"}


@pytest.mark.parametrize("form", FORMS)
def test_nothing_to_offer_is_quiet(shell: Shell, repo: Path, hermetic: Env, form: str) -> None:
    """An unknown command earlier on the line, or no repository: no candidates, and (bash, fish) no error text."""
    assert shell.complete(f"{form} nosuch ", repo) == []
    plain = hermetic.tmp / "plain"
    plain.mkdir()
    assert shell.complete(f"{form} diff ", plain) == []
    assert shell.complete(f"{form} --name ", plain) == []


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_directory_for_dash_c(hermetic: Env, repo: Path, shell: str) -> None:
    (repo / "subdir").mkdir()
    script = _script(shell, hermetic.tmp)
    got = {"zsh": zsh_complete, "fish": fish_complete}[shell]("git-airlock -C sub", repo, script)
    assert {candidate.rstrip("/") for candidate in got} == {"subdir"}


# -- per shell: how the script is installed, and what only that shell does ---------------------


def test_bash_git_form_ends_each_candidate_with_the_space(hermetic: Env, repo: Path) -> None:
    """git's completion runs with nospace; without the space, `git airlock di<TAB>` would stop at `diff`."""
    script = _script("bash", hermetic.tmp)
    assert bash_complete("git airlock di", repo, script) == ["diff "]
    assert bash_complete("git-airlock di", repo, script) == ["diff"]


def test_bash_without_git_completion_loaded(hermetic: Env, repo: Path) -> None:
    script = _script("bash", hermetic.tmp)
    assert set(bash_complete("git-airlock diff ", repo, script, git_completion=False)) == {"feature", "main"}
    assert set(bash_complete("git-airlock --engine ", repo, script, git_completion=False)) == {"auto", "sbx", "bwrap"}


@pytest.mark.parametrize("form", FORMS)
def test_zsh_from_fpath(hermetic: Env, repo: Path, form: str) -> None:
    """The script as a file `_git-airlock` in $fpath, which compinit autoloads; its #description line is what
    zsh's _git lists `airlock` with."""
    functions = hermetic.tmp / "zfunc"
    functions.mkdir()
    (functions / "_git-airlock").write_text(_script("zsh", hermetic.tmp).read_text())
    assert set(zsh_complete(f"{form} diff ", repo, fpath=functions)) == {"feature", "main"}
    assert set(zsh_complete(f"{form} --engine ", repo, fpath=functions)) == {"auto", "sbx", "bwrap"}
    assert "airlock" in zsh_complete("git airl", repo, fpath=functions)


@pytest.mark.parametrize("form", FORMS)
def test_fish_from_conf_d(hermetic: Env, repo: Path, form: str) -> None:
    """Where README.md puts the fish script: conf.d, read at every start."""
    conf_d = hermetic.home / ".config" / "fish" / "conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "git-airlock.fish").write_text(_script("fish", hermetic.tmp).read_text())
    assert set(fish_complete(f"{form} diff ", repo)) == {"feature", "main"}
    assert set(fish_complete(f"{form} --agent co", repo)) == {"codex", "copilot"}


# -- the completion command and start-up cost ---------------------------------------------------


@pytest.mark.parametrize(("login_shell", "first_line"), [("/bin/bash", "# git-airlock"), ("/usr/bin/zsh", "#compdef")])
def test_completion_picks_the_shell_from_SHELL(hermetic: Env, login_shell: str, first_line: str) -> None:
    result = airlock("completion", cwd=hermetic.tmp, env={"SHELL": login_shell})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(first_line)
    assert result.stdout == airlock("completion", Path(login_shell).name, cwd=hermetic.tmp).stdout


@pytest.mark.parametrize("login_shell", ["/bin/tcsh", ""])
def test_completion_with_an_unknown_SHELL(hermetic: Env, login_shell: str) -> None:
    result = airlock("completion", cwd=hermetic.tmp, env={"SHELL": login_shell})
    assert result.returncode == 2
    said = f"is {login_shell!r}" if login_shell else "is not set"
    assert f"error: cannot tell which shell to complete for: $SHELL {said}\n" in result.stderr
    assert "hint: name it: `git airlock completion bash`" in result.stderr
    assert result.stdout == ""


def _imported_commands(repo: Path, words: str) -> set[str]:
    """The command modules git-airlock imports to answer a completion request for ``words``."""
    env = {
        **os.environ,
        "_GIT_AIRLOCK_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
        "PYTHONPROFILEIMPORTTIME": "1",
    }
    proc = subprocess.run(["git-airlock"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    return set(re.findall(r"\| +git_airlock\.commands\.(\w+)$", proc.stderr, re.M))


def test_completion_imports_only_what_it_needs(repo: Path) -> None:
    assert _imported_commands(repo, "git-airlock ") == set()
    assert _imported_commands(repo, "git-airlock --agent ") == set()
    assert _imported_commands(repo, "git-airlock diff ") == {"_shared", "gitops"}
