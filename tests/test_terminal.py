"""Sandbox text on the terminal: 8-bit controls, undecodable bytes and bidi controls stay inert.

A terminal that honours 8-bit controls reads the byte 0x9b as CSI, and a
bidirectional override makes a name display as something else (Trojan
Source). git output is decoded with ``surrogateescape``, so an undecodable
byte travels as a lone surrogate that Python writes back as the raw byte.
These tests read what the CLI writes as bytes, which is what a terminal gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Env, airlock, git, write_agent
from git_airlock.terminal import sanitize, sanitize_line

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
BRANCH = "feat\u202e\udc9bx"
"""The sandbox's branch as git output decoded with surrogateescape holds it: RLO, then the raw byte 0x9b."""
SHOWN_BRANCH = "feat<U+202E>\\x9bx"

# printf octal: \233 is the raw byte 0x9b, \342\200\256 is U+202E (RLO), \302\233 is U+009B (CSI).
# `git commit` turns a message's invalid UTF-8 into Latin-1 code points, so the second commit
# is written by hand to keep a raw 0x9b in its subject and author.
HOSTILE_BYTES = """\
name=$(printf 'bidi\\342\\200\\256txt\\233[31m.md')
printf 'content \\233[2J \\342\\200\\256 \\302\\233[8m \\342\\201\\246\\n' > "$name"
git add -A
GIT_AUTHOR_NAME=$(printf 'Mallory \\302\\233[8m \\342\\200\\256') \\
    git commit -q -m "$(printf 'subject \\302\\233[2J \\342\\200\\256 gnp.exe \\342\\200\\217 end')"
raw=$(printf 'tree %s\\nparent %s\\nauthor R\\233w <r@x> 1 +0000\\ncommitter R <r@x> 1 +0000\\n\\n%s\\n' \\
    "$(git rev-parse HEAD^{tree})" "$(git rev-parse HEAD)" "$(printf 'raw \\233[2J \\342\\201\\247 end')" \\
    | git hash-object -t commit -w --stdin)
git update-ref HEAD "$raw"
git branch "$(printf 'feat\\342\\200\\256\\233x')"
"""


def unsafe_characters(text: str) -> list[str]:
    """Characters that can drive or mislead a terminal: C0 (not tab, newline), DEL, C1, surrogates, bidi."""
    return [
        ch
        for ch in text
        if (ord(ch) < 0x20 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF or ch in BIDI
    ]


def assert_inert(output: bytes, what: object) -> str:
    """``output`` is valid UTF-8 (no stray raw byte) holding nothing unsafe; returns it decoded."""
    text = output.decode("utf-8")  # strict: a raw 0x80-0xff byte outside a UTF-8 sequence fails here
    assert unsafe_characters(text) == [], (what, text)
    return text


def airlock_bytes(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``git airlock ARGS`` with stdout and stderr kept as the bytes a terminal would receive."""
    proc = subprocess.run(["git", "airlock", *args], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc


def test_sanitize_shows_c1_controls_as_bytes() -> None:
    assert sanitize("a\x9b[31mb\x85c\x80\x9f") == "a\\x9b[31mb\\x85c\\x80\\x9f"
    assert sanitize("\x1b[2J\x7f") == "^[[2J^?"


def test_sanitize_shows_undecodable_bytes_and_lone_surrogates() -> None:
    raw = b"name \x9b[31m \x80 \xff".decode("utf-8", "surrogateescape")
    assert sanitize(raw) == "name \\x9b[31m \\x80 \\xff"
    assert sanitize("\ud800 \udbff \udc00 \udc7f \udfff") == "<U+D800> <U+DBFF> <U+DC00> <U+DC7F> <U+DFFF>"
    # nothing is left for surrogateescape to turn back into a raw byte
    assert sanitize(raw).encode("utf-8") == b"name \\x9b[31m \\x80 \\xff"


@pytest.mark.parametrize("control", list(BIDI))
def test_sanitize_shows_each_bidi_control(control: str) -> None:
    shown = f"<U+{ord(control):04X}>"
    assert sanitize(f"a{control}b") == f"a{shown}b"
    assert sanitize_line(f"x\n{control}\ty") == f"x {shown} y"


def test_sanitize_keeps_ordinary_text() -> None:
    text = "naïve café\tこんにちは 😀 \u00a0 \u05d0\u05d1 \u0627\u0644\n"
    assert sanitize(text) == text


def test_progress_messages_are_sanitised_for_every_caller(capsys: pytest.CaptureFixture[str]) -> None:
    """``App.info`` carries git's error output (a failed fetch, a submodule's) and sandbox ref names."""
    from git_airlock.app import App

    App().info("warning: could not fetch submodule x: fatal: \x1b]0;t\x07 'refs/heads/a\u202e\udc9b'")
    assert (
        capsys.readouterr().err == "warning: could not fetch submodule x: fatal: ^[]0;t^G 'refs/heads/a<U+202E>\\x9b'\n"
    )


def test_hostile_bytes_never_reach_the_terminal(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, HOSTILE_BYTES)
    assert airlock("--name", "h", "up", cwd=project).returncode == 0
    outputs = {}
    review = ("review", "--tool", "terminal", "--no-mark")
    for args in (("fetch",), ("status",), ("log",), ("log", "--all-sandboxes"), ("diff",), ("diff", "--stat"), review):
        result = airlock_bytes("--name", "h", *args, cwd=project)
        assert result.returncode == 0, (args, result.stderr)
        outputs[args] = assert_inert(result.stdout, args)
        assert_inert(result.stderr, args)
    assert f"sandbox-h/{SHOWN_BRANCH}" in outputs[("fetch",)]
    assert f"sandbox-h/{SHOWN_BRANCH}: 2 commit(s) not in main" in outputs[("status",)]
    assert f"branch {SHOWN_BRANCH}: 2 unreviewed" in outputs[("log",)]
    assert "Mallory \\x9b[8m <U+202E>: subject \\x9b[2J <U+202E> gnp.exe <U+200F> end" in outputs[("log",)]
    assert "R\\x9bw: raw \\x9b[2J <U+2067> end" in outputs[("log",)]
    assert "+content \ufffd[2J <U+202E> \\x9b[8m <U+2066>" in outputs[("diff",)]  # libgit2 decodes the patch
    assert "bidi<U+202E>txt\ufffd[31m.md | 1 +" in outputs[("diff", "--stat")]
    assert "Author: Mallory \\x9b[8m <U+202E> <" in outputs[review]
    assert "Author: R\\x9bw <r@x>" in outputs[review] and "    raw \\x9b[2J <U+2067> end" in outputs[review]


def test_log_json_escapes_everything_and_keeps_the_exact_names(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, HOSTILE_BYTES)
    assert airlock("--name", "h", "up", cwd=project).returncode == 0
    assert airlock_bytes("--name", "h", "fetch", cwd=project).returncode == 0
    result = airlock_bytes("--name", "h", "log", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    assert max(result.stdout) < 0x80, "json.dumps keeps ensure_ascii: every non-ASCII character is a \\u escape"
    assert "\\u202e\\udc9b" in result.stdout.decode("ascii")
    rows = json.loads(result.stdout)
    assert {row["branch"] for row in rows} == {"main", BRANCH}
    cooked, raw = next(row for row in rows if row["branch"] == BRANCH)["commits"]
    assert cooked["subject"] == "subject \x9b[2J \u202e gnp.exe \u200f end"
    assert (raw["author"], raw["subject"]) == ("R\udc9bw", "raw \udc9b[2J \u2067 end")


def test_pre_push_hook_shows_hostile_names_inertly(project: Path, hermetic: Env) -> None:
    origin = hermetic.tmp / "origin.git"
    git(hermetic.tmp, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    write_agent(hermetic, HOSTILE_BYTES)
    assert airlock("--name", "h", "up", cwd=project).returncode == 0
    assert airlock_bytes("--name", "h", "fetch", cwd=project).returncode == 0
    assert airlock("hooks", "install", cwd=project).returncode == 0
    # the user pushes the sandbox's branch under its own name (str arguments carry the raw byte out)
    pushed = subprocess.run(
        ["git", "push", "-q", "origin", f"refs/remotes/sandbox-h/{BRANCH}:refs/heads/{BRANCH}"],
        cwd=project,
        capture_output=True,
        timeout=60,
    )
    assert pushed.returncode == 0, pushed.stderr
    shown = assert_inert(pushed.stderr, "pre-push")
    assert f"in this push of refs/remotes/sandbox-h/{SHOWN_BRANCH} -> refs/heads/{SHOWN_BRANCH}:" in shown, shown
    assert "subject \\x9b[2J <U+202E> gnp.exe <U+200F> end  (agent claude, sandbox h)" in shown
    assert "raw \\x9b[2J <U+2067> end  (agent claude, sandbox h)" in shown


def test_net_shows_hostile_log_entries_inertly(project: Path, hermetic: Env) -> None:
    """The egress gate validates host names; the printing path must not rely on it."""
    log = hermetic.home / ".local" / "state" / "git-airlock" / "net" / "h.jsonl"
    log.parent.mkdir(parents=True)
    entries = [
        {"sandbox": "h", "host": "evil\u202e\udc9b\x9b[2J\x1b]0;t\x07.example", "port": 443, "action": "blocked"},
        {"sandbox": "h\u2066\udc9b", "host": "api.example", "port": "44\u202e3", "action": "allowed", "sent": 1},
    ]
    with log.open("wb") as handle:
        handle.writelines(json.dumps(entry).encode() + b"\n" for entry in entries)
        handle.write(b'{"sandbox": "h", "host": "raw\x9b[2J\xe2\x80\xae.example", "port": 80, "action": "blocked"}\n')
    for args in (("net",), ("net", "--all")):
        result = airlock_bytes("--engine", "bwrap", "--name", "h", *args, cwd=project)
        assert result.returncode == 0, (args, result.stderr)
        shown = assert_inert(result.stdout, args)
        assert_inert(result.stderr, args)
        assert "evil<U+202E>\\x9b\\x9b[2J^[]0;t^G.example:443" in shown
        assert "api.example:44<U+202E>3" in shown
        assert "raw\ufffd[2J<U+202E>.example:80" in shown
        assert "h<U+2066>\\x9b" in shown


def test_streams_write_no_raw_byte_even_for_unsanitised_text(project: Path) -> None:
    """A path that forgot to sanitise still cannot send an undecodable byte back to the terminal."""
    script = "import sys; from git_airlock.entry import harden_streams; harden_streams(); print('a\\udc9bb'); "
    script += "print('c\\udc9bd', file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=project, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"a\\udc9bb\n"
    assert result.stderr == b"c\\udc9bd\n"
