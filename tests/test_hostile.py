"""A hostile sandbox: refs it must not reach, objects that fail checks, terminal escapes."""

from __future__ import annotations

from pathlib import Path

from conftest import Env, airlock, git, snapshot, write_agent

HOSTILE_REFS = """\
echo "print('v2')" > app.py
git commit -q -am "ordinary work"
git branch -f feature HEAD
git tag v1.0 HEAD
git update-ref refs/airlock/reviewed/h/main HEAD
git update-ref refs/notes/commits HEAD
git update-ref refs/remotes/origin/main HEAD
git update-ref refs/heads/main HEAD
"""

ESCAPES = """\
name=$(printf 'evil\\033[31mred\\033]0;title\\007.txt')
printf 'line with \\033[2J clear-screen\\n' > "$name"
git add -A
git commit -q -m "$(printf 'subject \\033]0;pwned\\007 \\033[8mhidden')"
"""

CORRUPT = """\
tree=$(git rev-parse HEAD^{tree})
bad=$(printf 'tree %s\\nauthor A <a> 1 +0000\\n\\nno committer line\\n' "$tree" \\
    | git hash-object -t commit --literally -w --stdin)
git update-ref refs/heads/broken "$bad"
"""

DOTGIT = """\
blob=$(echo '[core]' | git hash-object -w --stdin)
tree=$(printf '100644 blob %s\\t.git\\n' "$blob" | git mktree)
commit=$(git commit-tree "$tree" -p HEAD -m "plant .git")
git update-ref refs/heads/dotgit "$commit"
"""


def test_sandbox_refs_land_only_in_its_namespaces(project: Path, hermetic: Env) -> None:
    git(project, "branch", "feature")
    git(project, "tag", "v1.0")
    write_agent(hermetic, HOSTILE_REFS)
    assert airlock("--name", "h", "up", cwd=project).returncode == 0
    host_refs = git(project, "for-each-ref", "--format=%(refname) %(objectname)")
    fetched = airlock("--name", "h", "fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    after = git(project, "for-each-ref", "--format=%(refname) %(objectname)")
    new = set(after.splitlines()) - set(host_refs.splitlines())
    assert {line.split()[0] for line in new} == {
        "refs/remotes/sandbox-h/main",
        "refs/remotes/sandbox-h/feature",
        "refs/sandboxes/h/main",
        "refs/sandboxes/h/feature",
    }
    # the host's own branch and tag of the same names did not move
    assert set(host_refs.splitlines()) <= set(after.splitlines())


def test_escape_sequences_never_reach_the_terminal(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, ESCAPES)
    assert airlock("--name", "esc", "up", cwd=project).returncode == 0
    for args in (("fetch",), ("status",), ("diff",), ("diff", "--stat")):
        result = airlock("--name", "esc", *args, cwd=project)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout + result.stderr, args
        assert "\x07" not in result.stdout + result.stderr, args
    shown = airlock("--name", "esc", "diff", cwd=project).stdout
    assert '"b/evil\\033[31mred\\033]0;title\\a.txt"' in shown  # quoted by libgit2, like git
    assert "line with ^[[2J clear-screen" in shown


def test_corrupt_objects_are_refused(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, CORRUPT)
    assert airlock("--name", "bad", "up", cwd=project).returncode == 0
    before = snapshot(project)
    refs_before = git(project, "for-each-ref")
    result = airlock("--name", "bad", "fetch", cwd=project)
    assert result.returncode == 1
    assert "missingCommitter" in result.stderr
    assert "hint: the sandbox's objects failed git's checks" in result.stderr
    assert git(project, "for-each-ref") == refs_before
    assert snapshot(project) == before


def test_tree_with_dotgit_entry_is_refused(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, DOTGIT)
    assert airlock("--name", "dg", "up", cwd=project).returncode == 0
    refs_before = git(project, "for-each-ref")
    result = airlock("--name", "dg", "fetch", cwd=project)
    assert result.returncode == 1
    assert "hasDotgit" in result.stderr
    assert git(project, "for-each-ref") == refs_before


def test_sandbox_hooks_and_config_never_run_on_fetch(project: Path, hermetic: Env) -> None:
    marker = hermetic.tmp / "hook-ran"
    write_agent(
        hermetic,
        f"""\
mkdir -p .githooks
printf '#!/bin/sh\\ntouch {marker}\\n' > .githooks/post-checkout
chmod +x .githooks/post-checkout
printf '*.txt filter=evil\\n' > .gitattributes
echo "print('changed')" > app.py
git add -A
git commit -q -m "hooks and filters"
""",
    )
    git(project, "config", "filter.evil.smudge", f"touch {marker}; cat")
    git(project, "config", "difftool.scripted.cmd", 'cat "$LOCAL/app.py" "$REMOTE/app.py" >/dev/null')
    assert airlock("--name", "hk", "up", cwd=project).returncode == 0
    steps = (
        ("fetch",),
        ("diff",),
        ("status",),
        ("log",),
        ("review", "--no-mark", "--tool", "scripted"),
        ("merge", "--yes", "--allow-host-code"),
    )
    for args in steps:
        result = airlock("--name", "hk", *args, cwd=project)
        assert result.returncode == 0, (args, result.stderr)
        if args[0] == "review":
            assert ".githooks/post-checkout: git hooks" in result.stderr
            assert ".gitattributes: git attributes can name filter and diff drivers" in result.stderr
    assert not marker.exists()
    assert (project / ".gitattributes").exists(), "the merge did happen"


def test_review_runs_no_filter_the_host_config_names(project: Path, hermetic: Env) -> None:
    """git's own difftool would smudge both sides through the host's filter; ours never does."""
    marker = hermetic.tmp / "filter-ran"
    (project / ".gitattributes").write_text("*.py filter=evil\n")
    git(project, "add", ".gitattributes")
    git(project, "commit", "-q", "-m", "attributes")
    git(project, "config", "filter.evil.smudge", f"touch {marker}; cat")
    git(project, "config", "difftool.scripted.cmd", 'cat "$LOCAL/app.py" "$REMOTE/app.py" > "$LOCAL/../seen"')
    write_agent(hermetic, "echo \"print('sandbox')\" > app.py && git commit -q -am 'agent edit'\n")
    assert airlock("--name", "rv", "up", cwd=project).returncode == 0
    result = airlock("--name", "rv", "review", "--no-mark", "--tool", "scripted", cwd=project)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
