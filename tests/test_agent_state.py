"""The agent's own state kept for the user across sandboxes (``airlock.keepAgentState``), and what it costs.

The agent is a stand-in for Claude Code's CLI: an executable named ``claude`` in the agents' store (where
``agents install claude`` puts the real one), which runs the script it is given. Claude Code's folder is
``~/.claude``; with state kept it finds ``.claude.json`` there too (``CLAUDE_CONFIG_DIR``).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from people import Person

from conftest import Env, airlock, data_dir, git, write_agent
from git_airlock.services import PLACEHOLDER

STORE = ("git-airlock", "agent-state", "claude")


def fake_claude(data_home: Path, owner: Person | None = None) -> None:
    """``claude SCRIPT`` runs SCRIPT: installed where `agents install claude` would put Claude Code."""
    binary = data_home / "git-airlock" / "agents" / "npm" / "bin" / "claude"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text('#!/bin/sh\nexec /bin/sh -c "$1"\n')
    binary.chmod(0o755)
    if owner is not None and not owner.is_root:
        for path in [binary, *binary.parents]:
            if path == owner.home:
                break
            os.chown(path, owner.uid, owner.gid)


def store_of(home: Path) -> Path:
    return home.joinpath(".local", "share", *STORE)


REMEMBER = """\
echo "$CLAUDE_CONFIG_DIR" > config-dir.txt
mkdir -p ~/.claude && echo 'prefer tabs' > ~/.claude/memory.md
echo '{"oauthAccount": "me"}' > "$CLAUDE_CONFIG_DIR/.claude.json"
"""

RECALL = """\
cat ~/.claude/memory.md ~/.claude/.claude.json > recalled.txt 2>&1 || true
echo 'and spaces in YAML' >> ~/.claude/memory.md
echo two > two.txt && git add two.txt && git commit -qm 'the second sandbox'
"""


def up(person: Person, project: Path, name: str, script: str) -> None:
    done = person.airlock("--engine", "bwrap", "--agent", "claude", "--name", name, "up", "--", script, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr


def worktree_file(person: Person, name: str, relative: str) -> Path:
    root = person.data_dir(name)
    upper = root / "upper" / relative
    return upper if (root / "upper").is_dir() else root / "clone" / relative


def test_kept_state_follows_the_user_into_the_next_sandbox(person: Person, hermetic: Env) -> None:
    """Memory and login written in one sandbox are there in the next, made after `rm`, which can change them
    (root: another block of uids, shown the store's as its own); nothing of it is host root's."""
    project = person.project()
    person.git(project, "config", "--global", "airlock.keepAgentState", "true")
    fake_claude(person.home / ".local" / "share", person)

    up(person, project, "one", REMEMBER)
    assert worktree_file(person, "one", "config-dir.txt").read_text() == "/home/agent/.claude\n"
    removed = person.airlock("--engine", "bwrap", "--name", "one", "rm", "--yes", "--no-fetch", cwd=project)
    assert removed.returncode == 0, removed.stderr
    store = store_of(person.home)
    assert (store / ".claude" / "memory.md").read_text() == "prefer tabs\n"  # `rm` left the store alone

    up(person, project, "two", RECALL)
    assert worktree_file(person, "two", "recalled.txt").read_text() == 'prefer tabs\n{"oauthAccount": "me"}\n'
    assert (store / ".claude" / "memory.md").read_text() == "prefer tabs\nand spaces in YAML\n"

    owners = {path.lstat().st_uid for path in [store, *store.rglob("*")]}
    assert 0 not in owners  # never host root's
    if person.is_root:
        base = json.loads((store.parent / "ids.json").read_text())["base"]
        assert all(base <= uid < base + 65536 for uid in owners), owners
        sandbox_roots = {json.loads((person.data_dir("two") / "meta.json").read_text())["ids"]["uid"][0][1]}
        assert base not in sandbox_roots  # the store's block is its own, not a sandbox's
    else:
        assert owners == {person.uid}

    # report names what the sandbox changed there: what the next sandbox will read
    report = person.airlock("--engine", "bwrap", "--name", "two", "report", cwd=project)
    assert report.returncode == 0, report.stderr
    assert "agent state kept for you (the next sandbox reads it): 1 change(s)" in report.stdout
    assert "  changed .claude/memory.md" in report.stdout
    shown = json.loads(person.airlock("--engine", "bwrap", "--name", "two", "report", "--json", cwd=project).stdout)
    assert shown["agent_state"] == ["changed .claude/memory.md"]


def test_by_default_every_sandbox_starts_with_a_fresh_agent_home(project: Path, hermetic: Env) -> None:
    fake_claude(hermetic.home / ".local" / "share")
    for name, script in (("one", REMEMBER), ("two", RECALL)):
        done = airlock("--engine", "bwrap", "--agent", "claude", "--name", name, "up", "--", script, cwd=project)
        assert done.returncode == 0, done.stderr
    assert (data_dir(hermetic, "one") / "home" / ".claude" / "memory.md").read_text() == "prefer tabs\n"
    recalled = data_dir(hermetic, "two") / "upper" / "recalled.txt"
    assert "No such file" in recalled.read_text()
    assert (data_dir(hermetic, "one") / "upper" / "config-dir.txt").read_text() == "\n"  # Claude's own default
    assert not store_of(hermetic.home).exists()
    report = airlock("--engine", "bwrap", "--name", "two", "report", "--json", cwd=project)
    assert json.loads(report.stdout)["agent_state"] is None


def test_a_repositorys_sandbox_conf_cannot_turn_it_on(project: Path, hermetic: Env) -> None:
    """A file an agent's commit could have put there may not open a channel between sandboxes."""
    fake_claude(hermetic.home / ".local" / "share")
    (project / "sandbox.conf").write_text("AIRLOCK_KEEP_AGENT_STATE=true\n")
    git(project, "add", "sandbox.conf")
    git(project, "commit", "-qm", "keep state")
    done = airlock("--engine", "bwrap", "--agent", "claude", "--name", "conf", "up", "--", REMEMBER, cwd=project)
    assert done.returncode == 1
    assert "sets AIRLOCK_KEEP_AGENT_STATE, which a file in the repository may not set" in done.stderr
    assert "hint: " in done.stderr and not data_dir(hermetic, "conf").exists()
    assert not store_of(hermetic.home).exists()


PLANT = 'ln -sf "$VICTIM" ~/.claude/.claude.json'


def test_a_link_planted_in_kept_state_is_never_written_through(project: Path, hermetic: Env) -> None:
    """The host answers Claude Code's first start in the store (a key held on the host): a link one sandbox
    left where that file goes is replaced, never followed, and what it points to stays as it was."""
    fake_claude(hermetic.home / ".local" / "share")
    hermetic.mp.setenv("AIRLOCK_KEEP_AGENT_STATE", "1")
    victim = hermetic.tmp / "victim.json"
    victim.write_text('{"the host": "file"}\n')
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input="sk-ant-test-0123456789\n")
    assert stored.returncode == 0, stored.stderr
    env = {"VICTIM": str(victim), "AIRLOCK_PASS_ENV": "VICTIM"}
    args = ("--engine", "bwrap", "--agent", "claude")
    planted = airlock(*args, "--name", "plant", "up", "--", PLANT, cwd=project, env=env)
    assert planted.returncode == 0, planted.stderr
    store = store_of(hermetic.home) / ".claude"
    assert (store / ".claude.json").is_symlink()

    second = airlock(*args, "--name", "next", "up", "--", "cat ~/.claude/.claude.json > seen.json", cwd=project)
    assert second.returncode == 0, second.stderr
    assert victim.read_text() == '{"the host": "file"}\n'
    answered = store / ".claude.json"
    assert stat.S_ISREG(answered.lstat().st_mode)
    assert json.loads(answered.read_text())["hasCompletedOnboarding"] is True
    seen = json.loads((data_dir(hermetic, "next") / "upper" / "seen.json").read_text())
    assert seen["customApiKeyResponses"]["approved"] == [PLACEHOLDER[-20:]]  # the key inside is the placeholder


@pytest.mark.usefixtures("no_sbx")
def test_the_dry_run_shows_the_store_bound_at_the_agents_folder(project: Path, hermetic: Env) -> None:
    fake_claude(hermetic.home / ".local" / "share")
    hermetic.mp.setenv("AIRLOCK_KEEP_AGENT_STATE", "1")
    dry = airlock("--engine", "bwrap", "--agent", "claude", "--dry-run", "up", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert "state kept for you in " in dry.stdout
    assert "/home/agent/.claude " in dry.stdout and "CLAUDE_CONFIG_DIR /home/agent/.claude" in dry.stdout
    assert not store_of(hermetic.home).exists()  # a dry run makes nothing


def test_sbx_says_it_keeps_no_agent_state(project: Path, hermetic: Env) -> None:
    write_agent(hermetic, "true\n")
    hermetic.mp.setenv("AIRLOCK_KEEP_AGENT_STATE", "1")
    done = airlock("--engine", "sbx", "--name", "vm", "up", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "note: the sbx engine keeps no agent state across sandboxes (airlock.keepAgentState)" in done.stderr


FLOOD = """\
python3 -c "
import os
os.makedirs(os.path.expanduser('~/.claude/flood'))
for i in range(20001):
    open(os.path.expanduser(f'~/.claude/flood/{i}'), 'w').close()
"
(cd ~/.claude && for i in $(seq 40); do mkdir d && cd d; done)
echo flood > flood.txt && git add flood.txt && git commit -qm flood
"""


def test_a_flooded_store_is_reported_as_not_all_compared(project: Path, hermetic: Env) -> None:
    """More entries than the listing takes, and folders deeper than it goes: `report` still answers, at
    once, and says the store must be taken as changed rather than showing a partial list as the whole."""
    fake_claude(hermetic.home / ".local" / "share")
    hermetic.mp.setenv("AIRLOCK_KEEP_AGENT_STATE", "1")
    flood = airlock("--engine", "bwrap", "--agent", "claude", "--name", "flood", "up", "--", FLOOD, cwd=project)
    assert flood.returncode == 0, flood.stderr
    report = airlock("--engine", "bwrap", "--name", "flood", "report", "--json", cwd=project)
    assert report.returncode == 0, report.stderr
    changes = json.loads(report.stdout)["agent_state"]
    assert changes[-1].startswith("not all of it compared: it holds more than 20000 entries")
    assert len(changes) <= 20001


BROKEN_ANSWERS = {
    "nested": "python3 -c \"open('/home/agent/.claude/.claude.json', 'w').write('[' * 200000)\"",
    "folder": "rm -f ~/.claude/.claude.json && mkdir ~/.claude/.claude.json",
}


@pytest.mark.parametrize("how", sorted(BROKEN_ANSWERS))
def test_a_store_file_the_agent_broke_does_not_stop_the_next_sandbox(project: Path, hermetic: Env, how: str) -> None:
    """The host merges its first-start answers into ``.claude.json`` in the store: JSON nested past the parser's
    depth, or a folder in its place, is replaced or passed by, never a crash of every later `up`."""
    fake_claude(hermetic.home / ".local" / "share")
    hermetic.mp.setenv("AIRLOCK_KEEP_AGENT_STATE", "1")
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input="sk-ant-test-0123456789\n")
    assert stored.returncode == 0, stored.stderr
    args = ("--engine", "bwrap", "--agent", "claude")
    broke = airlock(*args, "--name", "breaker", "up", "--", BROKEN_ANSWERS[how], cwd=project)
    assert broke.returncode == 0, broke.stderr
    after = airlock(*args, "--name", "after", "up", "--", "echo started > started.txt", cwd=project)
    answered = store_of(hermetic.home) / ".claude" / ".claude.json"
    if how == "nested":  # not JSON the host can read: replaced by its answers
        assert after.returncode == 0, after.stderr
        assert json.loads(answered.read_text())["hasCompletedOnboarding"] is True
    else:  # the folder stays the user's to look at: a clear line, and nothing half-made
        assert after.returncode == 1 and "Traceback" not in after.stderr
        assert f"error: cannot write {answered} in the agent's state kept for you: Is a directory" in after.stderr
        assert f"hint: a sandbox left something there: remove it (`rm -r {answered}`)" in after.stderr
        assert not data_dir(hermetic, "after").exists()


def test_the_stores_listing_never_follows_a_link(tmp_path: Path) -> None:
    """A folder of the store that is a link (the agent swapping one in while the host lists) is not entered:
    each folder is opened without following a link, from the store down."""
    from git_airlock.engines.bwrap import agentstate

    secret = tmp_path / "host-only"
    secret.mkdir()
    (secret / "TOP-SECRET-NAME").write_text("")
    store = tmp_path / "store"
    (store / ".claude" / "real").mkdir(parents=True)
    (store / ".claude" / "real" / "kept.md").write_text("x")
    (store / ".claude" / "swapped").symlink_to(secret)
    listed = agentstate._listing(str(store), (".claude",))
    assert ".claude/real/kept.md" in listed and ".claude/swapped" in listed
    assert not [path for path in listed if "TOP-SECRET" in path]
    assert agentstate._open_below(str(store), ".claude/swapped") is None
