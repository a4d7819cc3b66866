"""``KEY=VALUE`` lines read the way bash reads an assignment, without ever running anything.

code-airlock sourced ``sandbox.conf`` with bash, so values are read the same way: single quotes
keep everything, double quotes and backslashes escape, and a ``#`` that starts a word begins a
comment (``AGENT=codex  # the fast one``). What bash would run or expand (``$``, backquotes, a
second word, ``;``) is refused rather than taken literally or run.
"""

from __future__ import annotations

from git_airlock.errors import AirlockError


def assignments(text: str, path: str) -> list[tuple[int, str, str]]:
    """``(line number, KEY, value)`` for each assignment of ``text``; comments and blank lines skipped."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        where = f"{path}:{number}"
        if not sep or not key:
            raise AirlockError(
                f"{where}: expected KEY=VALUE, got {raw.strip()!r}",
                hint="each line of sandbox.conf is KEY=VALUE; lines starting with # are comments",
            )
        found.append((number, key, shell_word(value.strip(), f"{where}: {key}")))
    return found


_SPECIAL = set(";&|<>()")
"""Characters that end an assignment in bash when unquoted: what follows would run as a command."""


def shell_word(text: str, what: str) -> str:
    """One word as bash reads it after ``KEY=``: quotes removed, escapes applied, a comment dropped."""
    word: list[str] = []
    i = 0

    def refuse(problem: str) -> AirlockError:
        return AirlockError(
            f"{what}: {problem}",
            hint="sandbox.conf is read, never run: write the value itself, quoted if it has spaces "
            '(KEY="a value"  # a comment)',
        )

    while i < len(text):
        char = text[i]
        if char == "'":
            close = text.find("'", i + 1)
            if close < 0:
                raise refuse("a quote (') is never closed")
            word.append(text[i + 1 : close])
            i = close + 1
        elif char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] in "$`":
                    raise refuse(f"{text[i]!r} would be expanded by bash; sandbox.conf expands nothing")
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\':
                    i += 1
                word.append(text[i])
                i += 1
            if i >= len(text):
                raise refuse('a quote (") is never closed')
            i += 1
        elif char == "\\":
            if i + 1 < len(text):
                word.append(text[i + 1])
            i += 2
        elif char in " \t":
            rest = text[i:].lstrip()
            if rest and not rest.startswith("#"):
                raise refuse(f"{rest!r} follows the value; quote a value that has spaces")
            break
        elif char in "$`":
            raise refuse(f"{char!r} would be expanded by bash; sandbox.conf expands nothing")
        elif char in _SPECIAL:
            raise refuse(f"{char!r} would end the assignment in bash; quote it")
        else:
            word.append(char)
            i += 1
    return "".join(word)
