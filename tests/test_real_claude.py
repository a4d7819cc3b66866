"""The real Claude Code in a bwrap sandbox, driven through a whole task by a stand-in of Anthropic's API.

`test_bwrap_agent.py` proves Claude Code starts (``--version``); these tests prove it works there as a
user meets it: `git airlock run "TASK"` with no extra arguments runs it headless without permission
prompts, it makes a commit that comes home through fetch, approve and merge, and `git airlock up` shows
its prompt at once, with no login, API-key or trust question, when the host holds an API key or a
subscription token.

The model is ``fakes/messages_api.py``: HTTPS on 127.0.0.1 with a certificate for api.anthropic.com,
which the gate trusts through ``SSL_CERT_FILE`` and dials through ``AIRLOCK_SERVICE_URLS`` and
``AIRLOCK_EGRESS_RESOLVE``. It answers the first request with a ``Bash`` tool call that commits a file
and the tool's result with a final text. What it records shows where the key went: the real key
arrives there (the gate put it on), and it is found nowhere the sandbox can look.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import (
    Env,
    airlock,
    approve_and_merge,
    assert_gate_dialled_only,
    data_dir,
    files_holding,
    git,
    key_seen_in_sandbox,
    net_rows,
    pane,
    sandbox_names,
    sandbox_setenv,
    wait_for_screen,
)
from fakes.messages_api import HOST_NAME, MessagesApi, certificate
from git_airlock.agents import AGENTS
from git_airlock.services import PLACEHOLDER

pytestmark = pytest.mark.npm

TASK = "create hello.txt and commit it"
COMMAND = 'echo hello > hello.txt && git add hello.txt && git commit -m "add hello"'
CLAUDE_SWITCHES = {
    "IS_SANDBOX": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
}
FIRST_START_SCREENS = (
    "Choose the text style that looks best with your terminal",  # onboarding: the theme
    "Unable to connect to Anthropic services",  # onboarding's check that api.anthropic.com answers
    "Select login method",  # no credential
    "Detected a custom API key in your environment",  # ANTHROPIC_API_KEY not approved yet
    "Do you want to use this API key?",
    "Quick safety check",  # the workspace not trusted yet
    "Yes, I trust this folder",
    "WARNING: Claude Code running in Bypass Permissions mode",  # --dangerously-skip-permissions not accepted
)
"""What Claude Code 2.1 shows before its prompt on a first start (its binary's strings)."""
PROMPT = "? for shortcuts"
"""The footer under Claude Code's input box: the prompt is ready for typing."""
CREDENTIALS = {
    "anthropic": ("x-api-key", "", "sk-ant-test-"),
    "claude": ("authorization", "Bearer ", "sk-ant-oat01-test-"),
}
"""Per service `secret set` takes: the header the gate puts the credential in, its prefix there, and how a
test value begins (an API key; a subscription's token from `claude setup-token`)."""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[MessagesApi]:
    """The stand-in model, serving until the test ends."""
    cert, key = certificate(tmp_path)
    with MessagesApi(cert, key, COMMAND) as server:
        yield server


@pytest.fixture
def service() -> str:
    """The credential the host holds: an API key, unless a test is parametrized over it."""
    return "anthropic"


@pytest.fixture
def claude_ready(
    project: Path, hermetic: Env, api: MessagesApi, service: str, install_agent: Callable[[str, Path], None]
) -> tuple[str, dict[str, str]]:
    """Claude Code installed once for the user's sandboxes, and an Anthropic credential held on the host.

    Returns the key (random: a leak is found by value) and what points the egress gate at the stand-in:
    the credential endpoint's upstream, the address it dials for api.anthropic.com and the certificate it
    verifies there. Every host of Claude's preset resolves to loopback, so nothing a sandbox tries
    reaches the real Anthropic, and the gate's log still names each attempt. Only the commands that
    start a sandbox get it: npm, in `agents install`, keeps the public authorities."""
    install_agent("claude", project)
    key = CREDENTIALS[service][2] + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", service, cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    env = {
        "AIRLOCK_SERVICE_URLS": f"{service}=https://{HOST_NAME}:{api.port}",
        "AIRLOCK_EGRESS_RESOLVE": ",".join(f"{host}=127.0.0.1" for host in AGENTS["claude"].hosts),
        "SSL_CERT_FILE": str(api.cert),
    }
    return key, env


def assert_only_the_stand_in(api: MessagesApi, hermetic: Env, name: str, key: str, service: str = "anthropic") -> None:
    """Every request the stand-in got carried the real credential, put on by the gate; the gate
    dialled nothing else, and its log holds no credential."""
    header, prefix, _ = CREDENTIALS[service]
    seen = api.seen()
    assert seen, "Claude Code never reached the model"
    for request in seen:
        assert request.headers.get(header) == prefix + key, request.path
        assert request.headers["host"] == f"{HOST_NAME}:{api.port}"
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, HOST_NAME, api.port, service, key)


def test_run_drives_claude_code_headless_through_the_gate(
    project: Path, hermetic: Env, api: MessagesApi, claude_ready: tuple[str, dict[str, str]]
) -> None:
    """`run` is all a user types: Claude Code acts without prompts, commits, and the commit comes home
    through review; the key reaches the model API and nothing in the sandbox."""
    key, env = claude_ready
    base = git(project, "rev-parse", "HEAD").strip()

    dry = airlock("--engine", "bwrap", "--agent", "claude", "--dry-run", "run", TASK, cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert key not in dry.stdout + dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert argv[-4:] == ["claude", "--dangerously-skip-permissions", "-p", TASK]
    assert {name: sandbox_env.get(name) for name in CLAUDE_SWITCHES} == CLAUDE_SWITCHES
    assert sandbox_env["ANTHROPIC_API_KEY"] == PLACEHOLDER
    assert sandbox_env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3128/airlock/anthropic"

    result = airlock("--engine", "bwrap", "--agent", "claude", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "claude finished and made 1 new commit(s)" in result.stderr
    assert "Done: hello.txt is committed." in result.stdout
    (name,) = sandbox_names(project)

    # fetched by `run` itself: the commit Claude Code's Bash tool made in the sandbox's clone
    tip = f"refs/remotes/sandbox-{name}/main"
    assert git(project, "log", "-1", "--format=%s%n%P", tip).split() == ["add", "hello", base]
    assert git(project, "show", f"{tip}:hello.txt") == "hello\n"

    # the conversation: the task, one Bash call (Claude Code 2.1's tool and schema), its result, the end
    kinds = [kind for _, kind in api.replies if kind != "side"]
    assert kinds == ["tool_use", "final"], kinds
    (asked,) = [request for request, kind in api.replies if kind == "tool_use"]
    (answered,) = [request for request, kind in api.replies if kind == "final"]
    assert asked.path == "/v1/messages?beta=true" and asked.body["stream"] is True
    assert TASK in json.dumps(asked.body["messages"])
    (bash,) = [tool for tool in asked.body["tools"] if tool["name"] == "Bash"]
    assert bash["input_schema"]["required"] == ["command"]
    assert bash["input_schema"]["properties"]["command"]["type"] == "string"
    (outcome,) = answered.tool_results()
    assert outcome.get("is_error") is not True and "add hello" in json.dumps(outcome["content"])
    assert answered.headers["user-agent"].startswith("claude-cli/2.1.")
    assert_only_the_stand_in(api, hermetic, name, key)
    (row,) = net_rows(project)
    assert row[:3] == [f"{HOST_NAME}:{api.port}", str(len(api.seen())), "0"]

    # the key: in nothing the sandbox keeps (HOME, clone, layer), nor in what it sees while it runs
    leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []
    assert f"ANTHROPIC_API_KEY={PLACEHOLDER}" in seen_env

    approve_and_merge(project)
    assert git(project, "log", "-1", "--format=%s").strip() == "add hello"
    assert (project / "hello.txt").read_text() == "hello\n"


@pytest.mark.parametrize("service", ["anthropic", "claude"])
def test_up_shows_claude_codes_prompt_without_first_start_questions(
    project: Path, hermetic: Env, api: MessagesApi, claude_ready: tuple[str, dict[str, str]], service: str
) -> None:
    """A first start with a key held on the host is answered before it happens: a question there would
    stop a user (or a script driving tmux) at a screen the sandbox makes meaningless, and a login would
    put a second credential in the sandbox's HOME."""
    key, env = claude_ready
    args = ("--engine", "bwrap", "--agent", "claude", "--name", "i", "--tmux-detached", "up")
    started = airlock(*args, cwd=project, env=env)
    assert started.returncode == 0, started.stderr
    window = "=git-airlock-i:"
    try:
        shown = wait_for_screen("git-airlock-i", lambda shown: PROMPT in shown, FIRST_START_SCREENS)
        assert PROMPT in shown, shown
        assert [screen for screen in FIRST_START_SCREENS if screen in shown] == [], shown
        assert f"/workspace/{project.name}" in shown  # the REPL's header names the trusted workspace
        # the first thing typed goes to the model through the gate, with the key it approved
        subprocess.run(["tmux", "send-keys", "-t", window, "-l", TASK], check=True)
        subprocess.run(["tmux", "send-keys", "-t", window, "Enter"], check=True)
        asked = api.wait_for_reply("tool_use", timeout=60)
        assert asked is not None, pane("git-airlock-i")
        assert TASK in json.dumps(asked.body["messages"])
    finally:
        stopped = airlock("--engine", "bwrap", "--name", "i", "stop", cwd=project)
    assert stopped.returncode == 0, stopped.stderr
    assert_only_the_stand_in(api, hermetic, "i", key, service)

    # the answers were the sandbox's: onboarding done, its workspace trusted, its placeholder key (an
    # API key is approved by its last 20 characters; a token needs no approval), the credential nowhere
    state = json.loads((data_dir(hermetic, "i") / "home" / ".claude.json").read_text())
    assert state["hasCompletedOnboarding"] is True
    assert state["projects"][f"/workspace/{project.name}"]["hasTrustDialogAccepted"] is True
    if service == "anthropic":
        assert state["customApiKeyResponses"]["approved"] == [PLACEHOLDER[-20:]]
    assert files_holding(data_dir(hermetic, "i"), key) == []


def test_kept_state_gives_claude_code_its_folder_across_sandboxes(
    project: Path, hermetic: Env, api: MessagesApi, claude_ready: tuple[str, dict[str, str]]
) -> None:
    """With `airlock.keepAgentState`, the real Claude Code keeps everything of its own in the store's
    ``~/.claude`` (``.claude.json`` too, through ``CLAUDE_CONFIG_DIR``): the session one sandbox wrote is
    there after its `rm`, for the next; the key is in none of it."""
    key, env = claude_ready
    env = {**env, "AIRLOCK_KEEP_AGENT_STATE": "1"}
    first = airlock("--engine", "bwrap", "--agent", "claude", "--name", "one", "run", TASK, cwd=project, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    store = hermetic.home / ".local" / "share" / "git-airlock" / "agent-state" / "claude" / ".claude"
    config = json.loads((store / ".claude.json").read_text())
    assert config["hasCompletedOnboarding"] is True and "userID" in config  # the host's answers, and Claude's own
    assert not (data_dir(hermetic, "one") / "home" / ".claude.json").exists()
    sessions = sorted(path.name for path in (store / "projects").rglob("*.jsonl"))
    assert len(sessions) == 1, sessions

    removed = airlock("--engine", "bwrap", "--name", "one", "rm", "--yes", "--no-fetch", cwd=project)
    assert removed.returncode == 0, removed.stderr
    second = airlock("--engine", "bwrap", "--agent", "claude", "--name", "two", "run", TASK, cwd=project, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert sessions[0] in [path.name for path in (store / "projects").rglob("*.jsonl")]
    assert len(list((store / "projects").rglob("*.jsonl"))) == 2
    assert files_holding(store.parent, key) == []
