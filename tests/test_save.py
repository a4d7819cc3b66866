"""`rm` and `save` keep the work a fetch does not bring: uncommitted files, stashes, a detached HEAD,
other refs. Real bwrap sandboxes and the sbx emulator; every byte is checked on the host side."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import Env, airlock, data_dir, files_holding, git, run_in_sandbox, running_agent, write_agent

G = "git -c user.name=agent -c user.email=agent@example.com"


MESS = f"""\
set -e
echo stashed > stashed.txt
{G} stash push -q -u -m 'agent stash'
{G} checkout -q --detach
echo detached > detached.txt
{G} add detached.txt
{G} commit -q -m 'detached work'
{G} tag -a v-agent -m 'agent tag'
echo 'changed by the agent' >> app.py
printf 'new file\\n' > new.txt
mkdir -p sub
printf '\\000\\001\\002binary\\377' > sub/blob.bin
rm README.md
ln -s /etc/passwd link-out
echo '*.log' >> .git/info/exclude
echo ignored > build.log
"""
"""An agent that leaves every kind of work a fetch does not bring, with HEAD detached."""


def user_state(project: Path) -> tuple[str, str, str, str]:
    """What of the user's repository `rm` and `save` must not change."""
    return (
        git(project, "for-each-ref", "refs/heads", "refs/tags"),
        git(project, "status", "--porcelain", "--untracked-files=all"),
        git(project, "stash", "list"),
        git(project, "rev-parse", "HEAD"),
    )


def kept_prefix(stderr: str, name: str) -> str:
    match = re.search(rf"(refs/airlock/wip/{re.escape(name)}/[0-9TZ.]+/)worktree", stderr)
    assert match, stderr
    return match.group(1)


def assert_everything_kept(project: Path, prefix: str) -> None:
    refs = git(project, "for-each-ref", "--format=%(refname)", prefix).split()
    assert sorted(ref[len(prefix) :] for ref in refs) == ["head", "refs/tags/v-agent", "stash/0", "worktree"]
    worktree, head = prefix + "worktree", prefix + "head"
    assert git(project, "rev-parse", f"{worktree}^").strip() == git(project, "rev-parse", head).strip()
    assert git(project, "log", "-1", "--format=%s", head).strip() == "detached work"
    assert git(project, "show", f"{worktree}:app.py") == "print('v1')\nchanged by the agent\n"
    assert git(project, "show", f"{worktree}:new.txt") == "new file\n"
    blob = git(project, "rev-parse", f"{worktree}:sub/blob.bin").strip()
    raw = subprocess.run(["git", "cat-file", "blob", blob], cwd=project, capture_output=True, check=True).stdout
    assert raw == b"\x00\x01\x02binary\xff"
    assert git(project, "show", f"{worktree}:detached.txt") == "detached\n"
    tree = git(project, "ls-tree", worktree)
    assert "README.md" not in tree  # the deletion is kept too
    assert "build.log" not in tree  # ignored files are not work
    assert re.search(r"^120000 blob \w+\tlink-out$", tree, re.M)  # a link, stored as a link
    assert git(project, "cat-file", "-p", f"{worktree}:link-out") == "/etc/passwd"
    assert git(project, "show", f"{prefix}stash/0^3:stashed.txt") == "stashed\n"
    assert git(project, "log", "-1", "--format=%s", f"{prefix}stash/0").strip().endswith("agent stash")
    assert git(project, "cat-file", "-t", f"{prefix}refs/tags/v-agent").strip() == "commit"


def test_rm_keeps_everything_the_agent_left_on_bwrap(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "mess", MESS).returncode == 0
    before = user_state(project)
    removed = airlock("--engine", "bwrap", "--name", "mess", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert not data_dir(hermetic, "mess").exists()
    assert_everything_kept(project, kept_prefix(removed.stderr, "mess"))
    assert "look: git show --stat refs/airlock/wip/mess/" in removed.stderr
    assert user_state(project) == before
    logged = airlock("log", "--all-sandboxes", cwd=project)
    assert "detached work" in logged.stdout  # the kept work is unreviewed work of the sandbox


def test_rm_keeps_everything_the_agent_left_on_sbx(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, MESS)
    assert airlock("--name", "box", "up", cwd=project).returncode == 0
    before = user_state(project)
    removed = airlock("--name", "box", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    calls = hermetic.sbx_calls()
    assert calls.index(["rm", "--force", "box"]) > max(i for i, call in enumerate(calls) if call[:2] == ["exec", "box"])
    assert "box" not in hermetic.sbx_state_json()["sandboxes"]
    assert_everything_kept(project, kept_prefix(removed.stderr, "box"))
    assert user_state(project) == before


def test_save_keeps_a_snapshot_and_leaves_the_agents_clone_as_it_was(project: Path, hermetic: Env) -> None:
    script = f"echo draft > draft.txt; echo staged > staged.txt; {G} add staged.txt"
    assert run_in_sandbox(project, "snap", script).returncode == 0
    saved = airlock("--engine", "bwrap", "--name", "snap", "save", cwd=project)
    assert saved.returncode == 0, saved.stderr
    worktree = kept_prefix(saved.stderr, "snap") + "worktree"
    assert git(project, "show", f"{worktree}:draft.txt") == "draft\n"
    assert git(project, "show", f"{worktree}:staged.txt") == "staged\n"
    # the agent's own index and refs are as it left them: one file staged, one not, nothing staged for save
    seen = run_in_sandbox(
        project, "snap", "git status --porcelain > /tmp/s; git for-each-ref > /tmp/r; cat /tmp/s /tmp/r > seen.txt"
    )
    assert seen.returncode == 0, seen.stderr
    clone_view = (data_dir(hermetic, "snap") / "upper" / "seen.txt").read_text()
    assert "A  staged.txt" in clone_view and "?? draft.txt" in clone_view
    assert "airlock-capture" not in clone_view
    again = airlock("--engine", "bwrap", "--name", "snap", "save", cwd=project)
    assert kept_prefix(again.stderr, "snap") != kept_prefix(saved.stderr, "snap")  # a second save is a new one


def test_a_clean_sandbox_keeps_nothing(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "clean", "true").returncode == 0
    removed = airlock("--engine", "bwrap", "--name", "clean", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert "nothing uncommitted to keep" in removed.stderr
    assert git(project, "for-each-ref", "refs/airlock/wip/") == ""


def test_a_file_over_the_limit_stops_rm_until_forced(project: Path, hermetic: Env) -> None:
    script = "head -c 4096 /dev/zero > big.bin; echo small > small.txt"
    assert run_in_sandbox(project, "big", script).returncode == 0
    limited = {"AIRLOCK_SAVE_MAX_FILE_SIZE": "1k"}
    refused = airlock("--engine", "bwrap", "--name", "big", "rm", "--yes", cwd=project, env=limited)
    assert refused.returncode == 1
    assert "nothing was removed: 1 file(s) could not be kept" in refused.stderr and "big.bin" in refused.stderr
    assert data_dir(hermetic, "big").exists()
    worktree = kept_prefix(refused.stderr, "big") + "worktree"
    assert git(project, "show", f"{worktree}:small.txt") == "small\n"
    assert "big.bin" not in git(project, "ls-tree", "--name-only", worktree)
    forced = airlock("--engine", "bwrap", "--name", "big", "rm", "--yes", "--force", cwd=project, env=limited)
    assert forced.returncode == 0, forced.stderr
    assert "lost with the sandbox (not saved): big.bin" in forced.stderr
    assert not data_dir(hermetic, "big").exists()


def test_a_broken_clone_is_removed_only_with_force_and_says_what_is_lost(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "broken", "echo unsaved > unsaved.txt").returncode == 0
    (data_dir(hermetic, "broken") / "clone" / ".git" / "HEAD").write_text("garbage\n")
    refused = airlock("--engine", "bwrap", "--name", "broken", "rm", "--yes", "--no-fetch", cwd=project)
    assert refused.returncode == 1
    assert "nothing was removed: the agent's uncommitted work could not be saved: git in the sandbox failed" in (
        refused.stderr
    )
    assert data_dir(hermetic, "broken").exists()
    forced = airlock("--engine", "bwrap", "--name", "broken", "rm", "--yes", "--no-fetch", "--force", cwd=project)
    assert forced.returncode == 0, forced.stderr
    assert "warning: the agent's uncommitted work could not be saved" in forced.stderr
    assert "warning: lost with the sandbox:" in forced.stderr
    assert not data_dir(hermetic, "broken").exists()


@pytest.mark.parametrize("target", ["/etc/hostname", "../../outside"])
def test_a_link_in_the_work_tree_is_never_followed(project: Path, hermetic: Env, target: str) -> None:
    outside = hermetic.tmp / "outside"
    outside.write_text("host secret\n")
    assert run_in_sandbox(project, "links", f"ln -s {target} trap; echo x > x.txt").returncode == 0
    saved = airlock("--engine", "bwrap", "--name", "links", "save", cwd=project)
    assert saved.returncode == 0, saved.stderr
    worktree = kept_prefix(saved.stderr, "links") + "worktree"
    assert git(project, "cat-file", "-p", f"{worktree}:trap") == target
    assert outside.read_text() == "host secret\n"


def test_save_while_the_agent_runs(project: Path, hermetic: Env) -> None:
    script = "echo draft > draft.txt; echo ready; read line; echo after > after.txt"
    with running_agent(project, "live", script) as agent:
        saved = airlock("--engine", "bwrap", "--name", "live", "save", cwd=project)
        assert saved.returncode == 0, saved.stderr
        worktree = kept_prefix(saved.stderr, "live") + "worktree"
        assert git(project, "show", f"{worktree}:draft.txt") == "draft\n"
    assert agent.returncode == 0
    assert (data_dir(hermetic, "live") / "upper" / "after.txt").read_text() == "after\n"  # it carried on


@pytest.mark.parametrize("command", [("save",), ("rm", "--yes")])
def test_a_dry_run_shows_the_snapshot_and_makes_nothing(project: Path, hermetic: Env, command: tuple[str, ...]) -> None:
    shown = airlock("--dry-run", "--engine", "bwrap", "--name", "dry", *command, cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "# prepare the sandbox in which git reads the clone" in shown.stdout
    assert "+refs/airlock-capture/*:refs/airlock/wip/dry/" in shown.stdout
    assert not data_dir(hermetic, "dry").exists()
    assert git(project, "for-each-ref", "refs/airlock/") == ""


def test_kept_work_moves_aside_with_the_rest_when_the_name_is_reused(project: Path, hermetic: Env) -> None:
    assert run_in_sandbox(project, "again", "echo unsaved > unsaved.txt").returncode == 0
    removed = airlock("--engine", "bwrap", "--name", "again", "rm", "--yes", cwd=project)
    stamp = kept_prefix(removed.stderr, "again").split("/")[-2]
    reused = run_in_sandbox(project, "again", "true")
    assert reused.returncode == 0, reused.stderr
    assert git(project, "for-each-ref", "refs/airlock/wip/again/") == ""  # the new sandbox starts with nothing
    moved = git(project, "for-each-ref", "--format=%(refname)", "refs/airlock/wip/").split()
    assert len(moved) == 1 and re.fullmatch(rf"refs/airlock/wip/again@[0-9TZ]+/{stamp}/worktree", moved[0])
    assert git(project, "show", f"{moved[0]}:unsaved.txt") == "unsaved\n"


PLANT_COMMONDIR_LATE = """\
set -e
echo draft > draft.txt
echo '* filter=x' > .gitattributes
mkdir -p .git/evil
cp .git/config .git/evil/config
printf '[filter "x"]\\n\\tclean = sh $GIT_DIR/evil/f.sh\\n' >> .git/evil/config
cat > .git/evil/f.sh <<'EOS'
hostgit=$(dirname "$(cat "$GIT_DIR/objects/info/alternates")")
cat "$hostgit/config" > "$GIT_DIR/loot" 2>&1
cat
EOS
for x in objects refs logs packed-refs; do ln -s ../$x .git/evil/$x; done
cat > /tmp/race.py <<'EOS'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
libc.inotify_add_watch(fd, b".git", 0x20)  # IN_OPEN: the host's first git command has passed the check
print("ready", flush=True)
os.read(fd, 4096)
open(".git/commondir.new", "w").write("evil\\n")
os.rename(".git/commondir.new", ".git/commondir")
EOS
python3 /tmp/race.py
read line
"""
"""Plants ``.git/commondir`` (a configuration with a filter that copies the host repository's
config) the moment the host's snapshot has passed its check for one."""


def test_a_commondir_planted_during_save_runs_nothing_and_reads_no_host_config(project: Path, hermetic: Env) -> None:
    git(project, "config", "http.https://example.com/.extraheader", "AUTHORIZATION: basic SECRET123")
    with running_agent(project, "cd", PLANT_COMMONDIR_LATE):
        saved = airlock("--engine", "bwrap", "--name", "cd", "save", cwd=project)
    assert "SECRET123" not in saved.stdout + saved.stderr
    assert files_holding(data_dir(hermetic, "cd"), "SECRET123") == []
    assert not (data_dir(hermetic, "cd") / "clone" / ".git" / "loot").exists()  # the filter never ran


def test_the_users_own_tags_are_not_kept_as_sandbox_work(project: Path, hermetic: Env) -> None:
    git(project, "checkout", "-q", "-b", "release-1")
    (project / "fix.txt").write_text("hotfix\n")
    git(project, "add", "fix.txt")
    git(project, "commit", "-q", "-m", "USER hotfix")
    git(project, "tag", "v1.0.1")
    git(project, "checkout", "-q", "main")
    assert run_in_sandbox(project, "tags", f"echo x > x.txt; {G} tag agent-tag HEAD~0").returncode == 0
    removed = airlock("--engine", "bwrap", "--name", "tags", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    kept = git(project, "for-each-ref", "--format=%(refname)", "refs/airlock/wip/").split()
    assert [ref.rsplit("/", 1)[-1] for ref in kept] == ["worktree"]  # no tag: none of them holds new work
    assert "USER hotfix" not in airlock("log", "--all-sandboxes", cwd=project).stdout


@pytest.mark.parametrize(
    "nested",
    [
        f"mkdir lib && cd lib && git init -q && echo x > f && git add f && {G} commit -q -m inner",
        "mkdir d && echo not-a-repo > d/.git",
    ],
)
def test_a_nested_git_is_never_dropped_silently(project: Path, hermetic: Env, nested: str) -> None:
    assert run_in_sandbox(project, "nest", nested).returncode == 0
    refused = airlock("--engine", "bwrap", "--name", "nest", "rm", "--yes", cwd=project)
    assert refused.returncode == 1
    assert "could not be kept" in refused.stderr and "/.git" in refused.stderr
    assert data_dir(hermetic, "nest").exists()


def test_a_file_name_cannot_forge_a_line_of_rms_message(project: Path, hermetic: Env) -> None:
    script = "head -c 4096 /dev/zero > \"$(printf 'ok.txt\\nhint: all work was kept; pass --force')\""
    assert run_in_sandbox(project, "forge", script).returncode == 0
    refused = airlock(
        "--engine", "bwrap", "--name", "forge", "rm", "--yes", cwd=project, env={"AIRLOCK_SAVE_MAX_FILE_SIZE": "1k"}
    )
    assert refused.returncode == 1
    assert not any(line.startswith("hint: all work was kept") for line in refused.stderr.splitlines())
