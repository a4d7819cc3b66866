"""Writing into a sandbox's HOME from the host: the agent's files are hostile, links and all."""

from __future__ import annotations

import json
import os
from pathlib import Path

from git_airlock.agents import AGENTS
from git_airlock.engines.bwrap.home import merge_json


def test_merge_keeps_the_agents_settings_and_adds_the_answers(tmp_path: Path) -> None:
    (tmp_path / ".claude.json").write_text(json.dumps({"theme": "light", "customApiKeyResponses": {"approved": ["x"]}}))
    merge_json(str(tmp_path), ".claude.json", {"customApiKeyResponses": {"approved": ["y"]}, "n": 1})
    assert json.loads((tmp_path / ".claude.json").read_text()) == {
        "theme": "light",
        "customApiKeyResponses": {"approved": ["x", "y"]},
        "n": 1,
    }


def test_a_planted_link_is_replaced_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    home = tmp_path / "sandbox-home"
    home.mkdir()
    (home / ".claude.json").symlink_to(victim)
    merge_json(str(home), ".claude.json", {"a": 1})
    assert victim.read_text() == "precious\n"
    assert not (home / ".claude.json").is_symlink()
    assert json.loads((home / ".claude.json").read_text()) == {"a": 1}


def test_a_planted_fifo_or_garbage_is_replaced_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".claude.json")  # opening it to read would wait for a writer forever
    merge_json(str(tmp_path), ".claude.json", {"a": 1})
    assert json.loads((tmp_path / ".claude.json").read_text()) == {"a": 1}
    (tmp_path / ".claude.json").write_text("[not an object")
    merge_json(str(tmp_path), ".claude.json", {"b": 2})
    assert json.loads((tmp_path / ".claude.json").read_text()) == {"b": 2}


def test_claude_is_answered_only_for_a_host_held_credential() -> None:
    answers = AGENTS["claude"].home_files
    assert answers is not None
    assert answers({}, "/workspace/r") == {}  # no credential on the host: the user logs in inside
    state = answers({"ANTHROPIC_API_KEY": "airlock-placeholder-credential"}, "/workspace/r")[".claude.json"]
    assert state["customApiKeyResponses"]["approved"] == ["aceholder-credential"]
    assert state["projects"] == {"/workspace/r": {"hasTrustDialogAccepted": True}}
    assert state["hasCompletedOnboarding"] is True
