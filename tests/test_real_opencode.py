"""The real OpenCode in a bwrap sandbox, driven through a whole task by a stand-in of Anthropic's or OpenAI's API.

`git airlock run "TASK"` with no extra arguments is all a user types: OpenCode runs headless (``opencode run``,
whose permissions already allow), on the provider whose key the host holds, against the gate's credential
endpoint rather than the provider's API, makes a commit that comes home through fetch, approve and merge, and
calls nobody else: no models catalog from models.opencode.ai, no plugin SDK from the npm registry, no update
check (each would be a connection the gate's log shows). `git airlock up` shows its prompt at once, with no
login or first-start question, and what is typed there reaches the model through the gate.

The model is ``fakes/messages_api.py`` (Anthropic's Messages API) or ``fakes/responses_api.py`` (OpenAI's
Responses API, which OpenCode's ``openai`` provider speaks): HTTPS on 127.0.0.1 with a certificate for the
API's host, which the gate trusts through ``SSL_CERT_FILE`` and dials through ``AIRLOCK_SERVICE_URLS`` and
``AIRLOCK_EGRESS_RESOLVE``. It answers OpenCode's turn with a call of its ``bash`` tool that commits a file,
and the tool's result with a final text. What it records shows where the key went: the real key arrives
there (the gate put it on), and it is found nowhere the sandbox can look.
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
from fakes import messages_api, responses_api
from fakes.messages_api import MessagesApi, certificate
from fakes.responses_api import ResponsesApi
from git_airlock.agents import AGENTS
from git_airlock.services import PLACEHOLDER

pytestmark = pytest.mark.npm

TASK = "create hello.txt containing hi and commit it"
COMMAND = 'echo hi > hello.txt && git add hello.txt && git commit -m "add hello"'
FINAL = "Done: hello.txt is committed."
GATE = "http://127.0.0.1:3128/airlock"
SWITCHES = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}
ELSEWHERE = ("models.opencode.ai", "registry.npmjs.org", "github.com", "api.github.com")
"""Hosts OpenCode 1.18 calls besides its model API unless told not to, as the gate's log shows them without
its switches: its models catalog (models.opencode.ai/api.json, at start and hourly), its plugin SDK installed
into its config folder at every start (registry.npmjs.org), the interactive UI's update check
(registry.npmjs.org, api.github.com); and in its bundle, language servers from github.com. Resolved to
loopback too, with its preset's hosts (opencode.ai, allowed under ``balanced``), so that nothing a sandbox
tries reaches them."""
KEYS = {"anthropic": "sk-ant-test-", "openai": "sk-proj-test-"}
"""How a test key of each service begins."""


class BashResponses(ResponsesApi):
    """The Responses API stand-in, scripted for OpenCode's ``bash`` function: one call running the command
    while the conversation holds none, the final text once its output came back (OpenCode resends the whole
    conversation: ``store`` is false), a short text for a request without the tool (the session's title)."""

    def reply_for(self, request: responses_api.Request) -> responses_api.Reply:
        if request.tool_outputs():
            return responses_api.Reply([self._message(self.final)], "final")
        called = any(item.get("type") == "function_call" for item in request.input_items())
        if "bash" not in request.tool_names() or called:
            return responses_api.Reply([self._message(self.side)], "side")
        item = {
            "type": "function_call",
            "id": self.next_id("fc"),
            "call_id": self.next_id("call"),
            "name": "bash",
            "arguments": json.dumps({"command": self.command, "description": "Create and commit hello.txt"}),
            "status": "completed",
        }
        return responses_api.Reply([item], "function")


StandInApi = MessagesApi | BashResponses


@pytest.fixture
def api(tmp_path: Path) -> Iterator[MessagesApi]:
    """The stand-in of Anthropic's API, serving until the test ends."""
    cert, key = certificate(tmp_path)
    with MessagesApi(cert, key, COMMAND, final=FINAL, tool="bash") as server:
        yield server


def resolve() -> str:
    """Every host OpenCode might dial, resolved to loopback for the gate."""
    return ",".join(f"{host}=127.0.0.1" for host in (*AGENTS["opencode"].hosts, *ELSEWHERE))


def hold_key(project: Path, service: str) -> str:
    """A random key of ``service`` held on the host (`secret set`); random, so that a leak is found by value."""
    key = KEYS[service] + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", service, cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    return key


def gate_env(service: str, host: str, port: int, authority: Path) -> dict[str, str]:
    """What points the egress gate at a stand-in: the service's upstream, the address it dials for every
    host, the authority it trusts there. Only the commands that start a sandbox get it: npm, in `agents
    install`, keeps the public authorities."""
    return {
        "AIRLOCK_SERVICE_URLS": f"{service}=https://{host}:{port}",
        "AIRLOCK_EGRESS_RESOLVE": resolve(),
        "SSL_CERT_FILE": str(authority),
    }


@pytest.fixture
def opencode_ready(
    project: Path, hermetic: Env, api: MessagesApi, install_agent: Callable[[str, Path], None]
) -> tuple[str, dict[str, str]]:
    """OpenCode installed once for the user's sandboxes, and an Anthropic key held on the host: the key,
    and the environment that points the gate at the stand-in."""
    install_agent("opencode", project)
    key = hold_key(project, "anthropic")
    return key, gate_env("anthropic", messages_api.HOST_NAME, api.port, api.cert)


def opencode_command(argv: list[str]) -> list[str]:
    """The agent's part of the sandbox's command line: from ``opencode`` on."""
    return argv[len(argv) - argv[::-1].index("opencode") - 1 :]


def assert_only_the_stand_in(api: StandInApi, hermetic: Env, name: str, key: str, service: str) -> None:
    """Every request the stand-in got carried the real key, put on by the gate, in the header of its API;
    the gate dialled nothing else (no catalog, plugin install or update check), and its log holds no key."""
    host = messages_api.HOST_NAME if service == "anthropic" else responses_api.HOST_NAME
    header, credential = ("x-api-key", key) if service == "anthropic" else ("authorization", f"Bearer {key}")
    seen = api.seen()
    assert seen, "OpenCode never reached the model"
    for request in seen:
        assert request.headers.get(header) == credential, request.path
        assert request.headers["host"] == f"{host}:{api.port}"
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, host, api.port, service, key)


def assert_plugin_sdk_counted_installed(hermetic: Env, name: str) -> None:
    """The sandbox's config folder as OpenCode's installer leaves it alone: a ``node_modules``, and a lock
    that lists its plugin SDK (nothing downloaded: the folder holds no package)."""
    folder = data_dir(hermetic, name) / "home" / ".config" / "opencode"
    lock = json.loads((folder / "package-lock.json").read_text())
    assert "@opencode-ai/plugin" in lock["packages"][""]["dependencies"]
    assert [path.name for path in (folder / "node_modules").iterdir()] == [".package-lock.json"]


def test_run_drives_opencode_headless_through_the_gate(
    project: Path, hermetic: Env, api: MessagesApi, opencode_ready: tuple[str, dict[str, str]]
) -> None:
    """`run` is all a user types: OpenCode, on the Anthropic key the host holds, acts without asking,
    commits, and the commit comes home through review; the key reaches the model API and nothing in the
    sandbox, and nothing but the model API is dialled."""
    key, env = opencode_ready
    base = git(project, "rev-parse", "HEAD").strip()

    dry = airlock("--engine", "bwrap", "--agent", "opencode", "--dry-run", "run", TASK, cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert key not in dry.stdout + dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert opencode_command(argv) == ["opencode", "run", TASK]
    assert {name: sandbox_env.get(name) for name in SWITCHES} == SWITCHES
    assert sandbox_env["ANTHROPIC_API_KEY"] == PLACEHOLDER
    assert sandbox_env["ANTHROPIC_BASE_URL"] == f"{GATE}/anthropic"
    # its Anthropic provider wants the /v1 in its base URL, which Claude Code's variable leaves out
    inline = json.loads(sandbox_env["OPENCODE_CONFIG_CONTENT"])
    assert inline == {"provider": {"anthropic": {"options": {"baseURL": f"{GATE}/anthropic/v1"}}}}

    result = airlock("--engine", "bwrap", "--agent", "opencode", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "opencode finished and made 1 new commit(s)" in result.stderr
    assert FINAL in result.stdout
    (name,) = sandbox_names(project)

    # fetched by `run` itself: the commit OpenCode's bash tool made in the sandbox's clone
    tip = f"refs/remotes/sandbox-{name}/main"
    assert git(project, "log", "-1", "--format=%s%n%P", tip).split() == ["add", "hello", base]
    assert git(project, "show", f"{tip}:hello.txt") == "hi\n"

    # the conversation: the task, one bash call (OpenCode 1.18's tool and schema), its result, the end; the
    # model is the best Anthropic one of OpenCode's catalog, chosen by OpenCode, not by the sandbox
    kinds = [kind for _, kind in api.replies if kind != "side"]
    assert kinds == ["tool_use", "final"], kinds
    (asked,) = [request for request, kind in api.replies if kind == "tool_use"]
    (answered,) = [request for request, kind in api.replies if kind == "final"]
    assert asked.method == "POST" and asked.route == "/v1/messages" and asked.body["stream"] is True
    assert asked.body["model"].startswith("claude-")
    assert TASK in json.dumps(asked.body["messages"])
    (bash,) = [tool for tool in asked.body["tools"] if tool["name"] == "bash"]
    assert "command" in bash["input_schema"]["required"]
    assert bash["input_schema"]["properties"]["command"]["type"] == "string"
    (outcome,) = answered.tool_results()
    assert outcome.get("is_error") is not True and "add hello" in json.dumps(outcome["content"])
    assert "opencode/1." in answered.headers["user-agent"]
    assert_only_the_stand_in(api, hermetic, name, key, "anthropic")
    (row,) = net_rows(project)
    assert row[:3] == [f"{messages_api.HOST_NAME}:{api.port}", str(len(api.seen())), "0"]
    assert_plugin_sdk_counted_installed(hermetic, name)

    # the key: in nothing the sandbox keeps (HOME with OpenCode's database, logs and snapshots, clone,
    # layer), nor in what it sees while it runs
    leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []
    assert f"ANTHROPIC_API_KEY={PLACEHOLDER}" in seen_env

    approve_and_merge(project)
    assert git(project, "log", "-1", "--format=%s").strip() == "add hello"
    assert (project / "hello.txt").read_text() == "hi\n"


def test_run_drives_opencode_on_an_openai_key(
    project: Path, hermetic: Env, tmp_path: Path, install_agent: Callable[[str, Path], None]
) -> None:
    """With an OpenAI key on the host instead, OpenCode runs on its ``openai`` provider with nothing typed:
    the Responses API at the gate's openai endpoint (``OPENAI_BASE_URL``, which it honours as it is), the
    key as a bearer token; the run is the same."""
    install_agent("opencode", project)
    key = hold_key(project, "openai")
    with BashResponses(tmp_path, COMMAND, final=FINAL) as api:
        env = gate_env("openai", responses_api.HOST_NAME, api.port, api.authority)
        dry = airlock("--engine", "bwrap", "--agent", "opencode", "--dry-run", "run", TASK, cwd=project, env=env)
        sandbox_env, argv = sandbox_setenv(dry.stdout)
        assert opencode_command(argv) == ["opencode", "run", TASK]
        assert sandbox_env["OPENAI_API_KEY"] == PLACEHOLDER
        assert sandbox_env["OPENAI_BASE_URL"] == f"{GATE}/openai/v1"
        assert json.loads(sandbox_env["OPENCODE_CONFIG_CONTENT"]) == {"provider": {"openai": {}}}
        assert "ANTHROPIC_API_KEY" not in sandbox_env

        result = airlock("--engine", "bwrap", "--agent", "opencode", "run", TASK, cwd=project, env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "opencode finished and made 1 new commit(s)" in result.stderr
        assert FINAL in result.stdout
        (name,) = sandbox_names(project)
        assert git(project, "show", f"refs/remotes/sandbox-{name}/main:hello.txt") == "hi\n"

        kinds = [kind for _, kind in api.replies if kind != "side"]
        assert kinds == ["function", "final"], kinds
        (asked,) = [request for request, kind in api.replies if kind == "function"]
        (answered,) = [request for request, kind in api.replies if kind == "final"]
        assert asked.route == "/v1/responses" and asked.body["stream"] is True
        assert asked.body["model"].startswith("gpt-")
        assert TASK in json.dumps(asked.body["input"])
        (bash,) = [tool for tool in asked.tools() if tool.get("name") == "bash"]
        assert bash["type"] == "function" and "command" in bash["parameters"]["required"]
        (outcome,) = answered.tool_outputs()
        assert outcome["type"] == "function_call_output" and "add hello" in json.dumps(outcome["output"])
        assert_only_the_stand_in(api, hermetic, name, key, "openai")
        leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
        assert leaks == []
        assert f"OPENAI_API_KEY={PLACEHOLDER}" in seen_env


def test_without_a_key_opencode_keeps_its_own_providers(project: Path) -> None:
    """With no key on the host nothing points OpenCode's providers at the gate (a login inside, or its Zen
    models at opencode.ai, work as installed), and the switches against calling home are there all the same."""
    dry = airlock("--engine", "bwrap", "--agent", "opencode", "--dry-run", "run", TASK, cwd=project)
    assert dry.returncode == 0, dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert opencode_command(argv) == ["opencode", "run", TASK]
    assert {name: sandbox_env.get(name) for name in SWITCHES} == SWITCHES
    assert not {"OPENCODE_CONFIG_CONTENT", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"} & set(sandbox_env)


PROMPT = "ctrl+p commands"
"""The hint under OpenCode 1.18's input box: the prompt is ready for typing."""
PROVIDER = "Anthropic"
"""The provider the input box names with its model once the model is chosen: the host key's."""
FIRST_START_SCREENS = ("Connect a provider", "Select model")
"""The dialogs OpenCode's TUI would stop at before any typing, with no model it can use (its bundle's titles)."""


def test_up_shows_opencodes_prompt_without_a_login(
    project: Path, hermetic: Env, api: MessagesApi, opencode_ready: tuple[str, dict[str, str]]
) -> None:
    """With a key held on the host the interactive OpenCode starts at its prompt, on the host key's provider,
    with nothing to answer; the first thing typed goes to the model through the gate and gets committed."""
    key, env = opencode_ready
    args = ("--engine", "bwrap", "--agent", "opencode", "--name", "i", "--tmux-detached", "up")
    started = airlock(*args, cwd=project, env=env)
    assert started.returncode == 0, started.stderr
    window = "=git-airlock-i:"
    try:
        shown = wait_for_screen(
            "git-airlock-i", lambda shown: PROMPT in shown and PROVIDER in shown, FIRST_START_SCREENS
        )
        assert PROMPT in shown, shown
        assert [screen for screen in FIRST_START_SCREENS if screen in shown] == [], shown
        # the input box names the model and its provider: the host key's, not OpenCode Zen's free ones
        assert PROVIDER in shown and "OpenCode Zen" not in shown, shown
        assert f"/workspace/{project.name}" in shown  # the workspace, in the status line
        subprocess.run(["tmux", "send-keys", "-t", window, "-l", TASK], check=True)
        subprocess.run(["tmux", "send-keys", "-t", window, "Enter"], check=True)
        answered = api.wait_for_reply("final", timeout=120)
        assert answered is not None, pane("git-airlock-i")
        (asked,) = [request for request, kind in api.replies if kind == "tool_use"]
        assert TASK in json.dumps(asked.body["messages"]) and asked.body["model"].startswith("claude-")
    finally:
        stopped = airlock("--engine", "bwrap", "--name", "i", "stop", cwd=project)
    assert stopped.returncode == 0, stopped.stderr
    assert_only_the_stand_in(api, hermetic, "i", key, "anthropic")
    assert files_holding(data_dir(hermetic, "i"), key) == []

    # the commit the typed task made comes home as a headless run's does
    fetched = airlock("--engine", "bwrap", "--name", "i", "fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    assert git(project, "show", "refs/remotes/sandbox-i/main:hello.txt") == "hi\n"


def test_with_both_keys_on_the_host_opencode_takes_anthropics(project: Path) -> None:
    """Both keys held: the inline config names Anthropic's provider alone, the one README says wins."""
    hold_key(project, "openai")
    hold_key(project, "anthropic")
    dry = airlock("--engine", "bwrap", "--agent", "opencode", "--dry-run", "run", TASK, cwd=project)
    sandbox_env, _ = sandbox_setenv(dry.stdout)
    assert sandbox_env["ANTHROPIC_API_KEY"] == sandbox_env["OPENAI_API_KEY"] == PLACEHOLDER
    assert list(json.loads(sandbox_env["OPENCODE_CONFIG_CONTENT"])["provider"]) == ["anthropic"]
