"""Sandbox names: sbx's rules, derivation from a repository, and explicit --name values."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from conftest import Env, airlock, git
from git_airlock import naming


def sbx_accepts(name: str) -> bool:
    """sbx's rule, written out independently of the package: letters, digits, '-', '.';
    at most 63 characters; not ending in '-' or '.'."""
    return bool(re.fullmatch(r"[A-Za-z0-9.-]+", name)) and len(name) <= 63 and name[-1] not in "-."


def derived_name(cwd: Path, *flags: str, env: dict | None = None) -> str:
    result = airlock(*flags, "config", "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return next(row["value"] for row in json.loads(result.stdout) if row["env"] == "(derived)")


# -- unit: the rules ---------------------------------------------------------------------------

VALID = ["a", "Z", "0", "ab", "a-b", "a.b", "my-repo.v2", "A1-b2.C3", "a" * 63, "1" + "-" * 61 + "2", "a..b"]
INVALID = [
    "",
    "a" * 64,
    "-a",
    ".a",
    "a-",
    "a.",
    "-",
    ".",
    "a b",
    "a_b",
    "a/b",
    "a:b",
    "café",
    "a\nb",
    "bad name!",
    "a\x00",
    "ü",
    " a",
    "a ",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_names(name: str) -> None:
    assert naming.is_valid_sandbox_name(name)
    assert naming.sandbox_name_problem(name) is None
    assert sbx_accepts(name)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names(name: str) -> None:
    assert not naming.is_valid_sandbox_name(name)
    problem = naming.sandbox_name_problem(name)
    assert problem is not None and problem.startswith("the sandbox name")


def test_problem_messages_say_what_is_wrong() -> None:
    assert "empty" in naming.sandbox_name_problem("")
    assert "longer than 63" in naming.sandbox_name_problem("x" * 64)
    assert "may only contain" in naming.sandbox_name_problem("a_b")
    assert "start and end" in naming.sandbox_name_problem("a-")
    assert "start and end" in naming.sandbox_name_problem(".a")


def test_every_short_name_agrees_with_sbx_or_is_stricter() -> None:
    """Exhaustive over names of up to two characters from an alphabet around the edges."""
    alphabet = ["a", "Z", "0", "-", ".", "_", " ", "é", "/"]
    names = [a + b for a in alphabet for b in [*alphabet, ""]]
    for name in names:
        if naming.is_valid_sandbox_name(name):
            assert sbx_accepts(name), name
        # the package may be stricter than sbx only about a leading '-' or '.'
        if sbx_accepts(name) and not naming.is_valid_sandbox_name(name):
            assert name[0] in "-.", name


ODD_FOLDERS = [
    "app",
    "My App",
    "  spaced  out  ",
    "café",
    "日本語",
    "😀 emoji 😀",
    "x" * 200,
    "a" * 54 + "-" + "b" * 20,
    "a" * 53 + "." + "b" * 20,
    ".hidden",
    "...dots...",
    "-dash-",
    "---",
    "!!!",
    "UPPER.lower",
    "tab\tand\nnewline",
    "semi;colon$(x)`y`",
    "under_score",
    "a" * 60 + "é" * 5,
    "é" * 200,
    "v1.2.3",
    "\udcff\udcfe-bytes",
]


def test_derived_names_from_odd_folders_are_valid() -> None:
    seen: dict[str, str] = {}
    folders = dict.fromkeys(ODD_FOLDERS + [chr(c) * 3 for c in range(32, 127) if chr(c) != "/"])
    for folder in folders:
        root = f"/home/user/projects/{folder}"
        name = naming.default_sandbox_name(root)
        assert naming.is_valid_sandbox_name(name), (folder, name)
        assert sbx_accepts(name), (folder, name)
        assert len(name) <= naming.MAX_NAME
        assert naming.default_sandbox_name(root) == name, "deterministic"
        digest = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        assert name.endswith("-" + digest), (folder, name)
        assert name == name.lower()
        assert name not in seen, f"{folder!r} and {seen.get(name)!r} collide"
        seen[name] = folder
        # the git remote and tmux session derived from it are usable too
        assert naming.remote_name(name) == f"sandbox-{name}"
        session = naming.tmux_session_name(name)
        assert "." not in session and ":" not in session


def test_derived_name_keeps_a_readable_folder_part() -> None:
    assert naming.default_sandbox_name("/src/My App").startswith("my-app-")
    assert naming.default_sandbox_name("/src/.hidden").startswith("hidden-")
    assert naming.default_sandbox_name("/src/!!!").startswith("repo-")
    assert naming.default_sandbox_name("/src/日本語").startswith("repo-")
    assert naming.default_sandbox_name("/src/app/").startswith("app-")
    assert naming.default_sandbox_name("/src/v1.2.3").startswith("v1.2.3-")
    assert naming.default_sandbox_name("/").startswith("repo-")
    long = naming.default_sandbox_name("/src/" + "x" * 200)
    assert long == "x" * 54 + "-" + long[-8:]


def test_same_folder_name_in_different_parents_differs() -> None:
    one = naming.default_sandbox_name("/work/a/app")
    two = naming.default_sandbox_name("/work/b/app")
    assert one != two
    assert one.startswith("app-") and two.startswith("app-")


# -- through git airlock: one repository, one name ---------------------------------------------


def test_same_name_from_subdirectory_worktree_and_symlink(project: Path, hermetic: Env) -> None:
    top = derived_name(project)
    assert top == naming.default_sandbox_name(os.path.realpath(project))

    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    assert derived_name(sub) == top

    worktree = hermetic.tmp / "linked-wt"
    git(project, "worktree", "add", "-q", "-b", "feature", str(worktree))
    assert derived_name(worktree) == top
    (worktree / "nested").mkdir()
    assert derived_name(worktree / "nested") == top

    link = hermetic.tmp / "link-to-project"
    link.symlink_to(project)
    assert derived_name(link) == top
    assert derived_name(hermetic.tmp, "-C", str(sub)) == top


def test_up_from_a_linked_worktree_is_refused(project: Path, hermetic: Env) -> None:
    worktree = hermetic.tmp / "linked-wt"
    git(project, "worktree", "add", "-q", "-b", "feature", str(worktree))
    result = airlock("up", cwd=worktree)
    assert result.returncode == 1
    assert "needs the main worktree" in result.stderr
    assert f"hint: run it from the main worktree: git -C {os.path.realpath(project)} airlock up" in result.stderr
    assert not any(call[:1] == ["run"] for call in hermetic.sbx_calls())


def test_two_repositories_named_app(hermetic: Env) -> None:
    names = []
    for parent in ("client-a", "client-b"):
        repo = hermetic.tmp / parent / "app"
        repo.mkdir(parents=True)
        git(repo, "init", "-q")
        names.append(derived_name(repo))
    assert names[0] != names[1]
    assert all(name.startswith("app-") and sbx_accepts(name) for name in names)


def test_odd_folder_names_through_the_cli(hermetic: Env) -> None:
    for folder in ("My Project (copy)", ".dotfiles", "ünïcödé", "x" * 120):
        repo = hermetic.tmp / folder
        repo.mkdir()
        git(repo, "init", "-q")
        name = derived_name(repo)
        assert sbx_accepts(name) and naming.is_valid_sandbox_name(name), (folder, name)


# -- explicit names ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["bad name!", "x" * 64, "-lead", "trail.", "under_score"])
def test_bad_explicit_name_is_refused(project: Path, hermetic: Env, bad: str) -> None:
    for args in (("--name", bad, "config", "--json"), ("--name", bad, "up"), ("--name", bad, "status")):
        result = airlock(*args, cwd=project)
        assert result.returncode == 1, args
        assert re.search(r"^error: the sandbox name .*", result.stderr, re.M), result.stderr
        assert "hint: sandbox names use letters, digits, '-' and '.', at most 63 characters" in result.stderr
    assert not any(call[:1] in (["run"], ["policy"]) for call in hermetic.sbx_calls())


def test_sixty_four_characters_is_too_long(project: Path) -> None:
    result = airlock("--name", "n" * 64, "config", cwd=project)
    assert result.returncode == 1
    assert "longer than 63 characters" in result.stderr


def test_sixty_three_characters_is_fine(project: Path) -> None:
    assert derived_name(project, "--name", "n" * 63) == "n" * 63


def test_bad_name_from_environment_and_sandbox_conf(project: Path) -> None:
    bad_env = airlock("config", cwd=project, env={"SANDBOX_NAME": "no spaces please"})
    assert bad_env.returncode == 1 and "may only contain" in bad_env.stderr
    (project / "sandbox.conf").write_text("SANDBOX_NAME=trailing-\n")
    bad_conf = airlock("config", cwd=project)
    assert bad_conf.returncode == 1 and "must start and end" in bad_conf.stderr
    assert derived_name(project, "--name", "fine.name") == "fine.name"
