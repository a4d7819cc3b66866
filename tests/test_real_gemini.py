"""The real Gemini CLI in a bwrap sandbox, driven through a whole task by a stand-in of Google's Gemini API.

`git airlock run "TASK"` with no extra arguments is all a user types: Gemini CLI runs headless (``-p``) in
its ``yolo`` approval mode with the workspace trusted, against the gate's credential endpoint rather than
generativelanguage.googleapis.com, makes a commit that comes home through fetch, approve and merge, and
calls nobody else (no usage statistics, no update check: each would be a connection the gate's log shows).
`git airlock up` shows its prompt at once, with no login, trust or theme question, when the host holds a key.

The model is ``fakes/gemini_api.py``: HTTPS on 127.0.0.1 with a certificate for
generativelanguage.googleapis.com (signed by an authority of the test's own, which the gate trusts through
``SSL_CERT_FILE``), dialled through ``AIRLOCK_SERVICE_URLS`` and ``AIRLOCK_EGRESS_RESOLVE``. It answers the
agent's turn with a call of Gemini CLI's shell tool (``run_shell_command``) that commits a file, and the
tool's result with a final text. What it records shows where the key went: the real key arrives there (the
gate put it on), and it is found nowhere the sandbox can look.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
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
from fakes.gemini_api import HOST_NAME, SHELL_TOOL, GeminiApi
from git_airlock.agents import AGENTS
from git_airlock.services import PLACEHOLDER

pytestmark = pytest.mark.npm

TASK = "create hello.txt containing hi and commit it"
COMMAND = 'echo hi > hello.txt && git add hello.txt && git commit -m "add hello"'
BASE_URL = "http://127.0.0.1:3128/airlock/google"
ELSEWHERE = ("play.googleapis.com", "registry.npmjs.org", "geminicli.com")
"""Hosts Gemini CLI 0.61 calls besides its model API unless told not to: its usage statistics
(play.googleapis.com/log, with ``privacy.usageStatisticsEnabled``), the interactive UI's update check (the npm
registry, which the balanced policy lets through, with ``general.enableAutoUpdateNotification``), and its
extension registry (geminicli.com). Resolved to loopback too, so that nothing a sandbox tries reaches them."""
SETTINGS = {
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "ide": {"enabled": False, "hasSeenNudge": True},
    "security": {"auth": {"selectedType": "gemini-api-key"}},
}
"""What the sandbox's ~/.gemini/settings.json must hold: the switches against calling home, the API key's auth."""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[GeminiApi]:
    """The stand-in model, serving until the test ends."""
    with GeminiApi(tmp_path, COMMAND) as server:
        yield server


@pytest.fixture
def gemini_ready(
    project: Path, hermetic: Env, api: GeminiApi, install_agent: Callable[[str, Path], None]
) -> tuple[str, dict[str, str]]:
    """Gemini CLI installed once for the user's sandboxes, and a Gemini API key held on the host.

    Returns the key (random: a leak is found by value) and what points the egress gate at the stand-in:
    the google endpoint's upstream, the address it dials for generativelanguage.googleapis.com and the
    authority it trusts there. Gemini CLI's hosts (and the ones it would call home to) resolve to loopback,
    so nothing a sandbox tries reaches the real Google, and the gate's log still names each attempt. Only
    the commands that start a sandbox get it: npm, in `agents install`, keeps the public authorities."""
    install_agent("gemini", project)
    key = "AIzaSy-test-" + secrets.token_hex(16)
    stored = airlock("--engine", "bwrap", "secret", "set", "google", cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    assert "stored the google credential" in stored.stderr
    listed = airlock("--engine", "bwrap", "secret", "ls", cwd=project)
    assert "google     stored (" in listed.stdout and key not in listed.stdout
    env = {
        "AIRLOCK_SERVICE_URLS": f"google=https://{HOST_NAME}:{api.port}",
        "AIRLOCK_EGRESS_RESOLVE": ",".join(f"{host}=127.0.0.1" for host in (*AGENTS["gemini"].hosts, *ELSEWHERE)),
        "SSL_CERT_FILE": str(api.authority),
    }
    return key, env


def gemini_command(argv: list[str]) -> list[str]:
    """The agent's part of the sandbox's command line: from ``gemini`` on."""
    return argv[len(argv) - argv[::-1].index("gemini") - 1 :]


def assert_only_the_stand_in(api: GeminiApi, hermetic: Env, name: str, key: str) -> None:
    """Every request the stand-in got carried the real key, put on by the gate; none carried the id usage
    statistics add; the gate dialled nothing else (no update check, usage statistics or telemetry), and
    its log holds no key."""
    seen = api.seen()
    assert seen, "Gemini CLI never reached the model"
    for request in seen:
        assert request.headers.get("x-goog-api-key") == key, request.path
        assert request.headers["host"] == f"{HOST_NAME}:{api.port}"
        assert "x-gemini-api-privileged-user-id" not in request.headers  # sent only with usage statistics on
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, HOST_NAME, api.port, "google", key)


def sandbox_settings(hermetic: Env, name: str) -> dict[str, object]:
    """The sandbox's ~/.gemini/settings.json, as Gemini CLI left it."""
    loaded: dict[str, object] = json.loads(
        (data_dir(hermetic, name) / "home" / ".gemini" / "settings.json").read_text()
    )
    return loaded


def test_run_drives_gemini_cli_headless_through_the_gate(
    project: Path, hermetic: Env, api: GeminiApi, gemini_ready: tuple[str, dict[str, str]]
) -> None:
    """`run` is all a user types: Gemini CLI acts without approvals, commits, and the commit comes home
    through review; the key reaches the model API and nothing in the sandbox."""
    key, env = gemini_ready
    base = git(project, "rev-parse", "HEAD").strip()

    dry = airlock("--engine", "bwrap", "--agent", "gemini", "--dry-run", "run", TASK, cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert key not in dry.stdout + dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert gemini_command(argv) == ["gemini", "--approval-mode", "yolo", "--skip-trust", "-p", TASK]
    assert sandbox_env["GEMINI_API_KEY"] == PLACEHOLDER
    assert sandbox_env["GOOGLE_GEMINI_BASE_URL"] == BASE_URL
    assert sandbox_env["GEMINI_TELEMETRY_ENABLED"] == "false"
    assert "answer gemini's first-start questions in ~/.gemini/settings.json" in dry.stdout

    result = airlock("--engine", "bwrap", "--agent", "gemini", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gemini finished and made 1 new commit(s)" in result.stderr
    assert "Done: hello.txt is committed." in result.stdout
    (name,) = sandbox_names(project)

    # fetched by `run` itself: the commit Gemini CLI's shell tool made in the sandbox's clone
    tip = f"refs/remotes/sandbox-{name}/main"
    assert git(project, "log", "-1", "--format=%s%n%P", tip).split() == ["add", "hello", base]
    assert git(project, "show", f"{tip}:hello.txt") == "hi\n"

    # the conversation: the task, one call of the shell tool, its result, the end (side calls, such as
    # the model router's classifier, aside)
    kinds = [kind for _, kind in api.replies if kind not in ("side", "json")]
    assert kinds == ["function_call", "final"], kinds
    (asked,) = [request for request, kind in api.replies if kind == "function_call"]
    (answered,) = [request for request, kind in api.replies if kind == "final"]
    assert asked.method == "POST" and asked.path.startswith("/v1beta/models/")
    assert asked.path.endswith(":streamGenerateContent?alt=sse")
    assert TASK in json.dumps(asked.body["contents"])
    (shell,) = [tool for tool in asked.function_declarations() if tool["name"] == SHELL_TOOL]
    schema = shell.get("parametersJsonSchema") or shell.get("parameters") or {}
    assert "command" in schema["required"], shell
    (outcome,) = answered.function_responses()
    assert outcome["name"] == SHELL_TOOL and "add hello" in json.dumps(outcome["response"])
    assert re.match(r"GeminiCLI(-\w+)?/0\.\d+\.\d+/", answered.headers["user-agent"]), answered.headers
    assert_only_the_stand_in(api, hermetic, name, key)
    (row,) = net_rows(project)
    assert row[:3] == [f"{HOST_NAME}:{api.port}", str(len(api.seen())), "0"]

    # the settings it ran with: the switches and the API key's auth, kept by Gemini CLI as written
    settings = sandbox_settings(hermetic, name)
    for section, values in SETTINGS.items():
        assert settings[section] == {**settings[section], **values}, settings  # type: ignore[dict-item]

    # the key: in nothing the sandbox keeps (HOME with Gemini CLI's sessions, clone, layer), nor in what it
    # sees while it runs
    leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []
    assert f"GEMINI_API_KEY={PLACEHOLDER}" in seen_env

    approve_and_merge(project)
    assert git(project, "log", "-1", "--format=%s").strip() == "add hello"
    assert (project / "hello.txt").read_text() == "hi\n"


FIRST_START_SCREENS = (
    "How would you like to authenticate for this project?",  # no auth type chosen: the login screen
    "Sign in with Google",
    "Do you trust the files in this folder?",  # the workspace not trusted yet
    "Select Theme",  # the theme picker, shown when the theme setting is unusable
    "Invalid auth method selected",
    "When using Gemini API, you must specify the GEMINI_API_KEY",
)
"""What Gemini CLI 0.61 shows before its prompt on a first start (its bundle's strings)."""
PROMPT = "Type your message or @path/to/file"
"""The placeholder in Gemini CLI's empty input box: the prompt is ready for typing."""
HEADER = "Authenticated with gemini-api-key"
"""The line beside the logo once the auth type is settled (it may come a frame after the prompt)."""
FAST_RETURN = 0.1
"""Seconds after typing before Enter submits: Gemini CLI takes an Enter within 30 ms of other keys for a
pasted newline."""


def wait_for_text(session: str, text: str, deadline: float = 30) -> str:
    """The window once it shows ``text`` (read every 0.1 s, as :func:`wait_for_screen` does)."""
    end = time.monotonic() + deadline
    while True:
        shown = pane(session)
        if text in shown or time.monotonic() > end:
            return shown
        time.sleep(0.1)


def test_up_shows_gemini_clis_prompt_without_first_start_questions(
    project: Path, hermetic: Env, api: GeminiApi, gemini_ready: tuple[str, dict[str, str]]
) -> None:
    """A first start with a key held on the host is answered before it happens: a login screen would stop
    a user (or a script driving tmux) at a question the sandbox makes meaningless, and a Google login would
    put a second credential in the sandbox's HOME."""
    key, env = gemini_ready
    args = ("--engine", "bwrap", "--agent", "gemini", "--name", "i", "--tmux-detached", "up")
    started = airlock(*args, cwd=project, env=env)
    assert started.returncode == 0, started.stderr
    window = "=git-airlock-i:"
    try:
        shown = wait_for_screen("git-airlock-i", lambda shown: PROMPT in shown and HEADER in shown, FIRST_START_SCREENS)
        assert PROMPT in shown, shown
        assert [screen for screen in FIRST_START_SCREENS if screen in shown] == [], shown
        assert HEADER in shown  # the auth type it was given, the API key's
        assert f"/workspace/{project.name}" in shown  # the footer names the trusted workspace
        # the first thing typed goes to the model through the gate, with the key the gate holds
        subprocess.run(["tmux", "send-keys", "-t", window, "-l", TASK], check=True)
        typed = time.monotonic()
        echoed = wait_for_text("git-airlock-i", f"> {TASK}")
        assert f"> {TASK}" in echoed, echoed
        # Enter within 30 ms of other keys is a pasted newline to Gemini CLI (FAST_RETURN_TIMEOUT in its
        # keypress handling), not a submission: a typist's Enter comes later than that
        time.sleep(max(0.0, typed + FAST_RETURN - time.monotonic()))
        subprocess.run(["tmux", "send-keys", "-t", window, "Enter"], check=True)
        asked = api.wait_for_reply("function_call", timeout=60)
        assert asked is not None, pane("git-airlock-i")
        assert TASK in json.dumps(asked.body["contents"])
    finally:
        stopped = airlock("--engine", "bwrap", "--name", "i", "stop", cwd=project)
    assert stopped.returncode == 0, stopped.stderr
    assert_only_the_stand_in(api, hermetic, "i", key)  # no update check (the npm registry), no usage statistics

    # the answers were the sandbox's: the API key's auth and the switches, its workspace trusted, the
    # credential nowhere
    settings = sandbox_settings(hermetic, "i")
    for section, values in SETTINGS.items():
        assert settings[section] == {**settings[section], **values}, settings  # type: ignore[dict-item]
    trusted = json.loads((data_dir(hermetic, "i") / "home" / ".gemini" / "trustedFolders.json").read_text())
    assert trusted == {f"/workspace/{project.name}": "TRUST_FOLDER"}
    assert files_holding(data_dir(hermetic, "i"), key) == []
