"""The real GitHub Copilot CLI in a bwrap sandbox, driven through a whole task by a stand-in of Anthropic's API.

Copilot CLI has two ways to a model. Its GitHub login (``/login``, or a token in ``COPILOT_GITHUB_TOKEN``,
``GH_TOKEN`` or ``GITHUB_TOKEN``) sends the token to ``https://api.github.com/copilot_internal/user`` and
then to the model API at ``*.githubcopilot.com``: hosts it derives from ``GH_HOST`` and reaches over HTTPS
itself, so that token cannot stay behind the gate and is the sandbox's own. Its own-key mode (``copilot
help providers``: ``COPILOT_PROVIDER_BASE_URL``, ``COPILOT_PROVIDER_TYPE``, ``COPILOT_PROVIDER_API_KEY``)
needs no GitHub login at all, and takes an ``http://`` base URL: the gate's credential endpoint. Where the
host holds an Anthropic key, every sandbox gets that mode with the placeholder, plus ``COPILOT_OFFLINE``,
which leaves out its telemetry (otherwise two connections to api.github.com per run), GitHub's MCP server
and its update check. The model is the user's choice, handed in with ``airlock.passEnv`` (``COPILOT_MODEL``).

The model is ``fakes/messages_api.py``: HTTPS on 127.0.0.1 with a certificate for api.anthropic.com, which
the gate trusts through ``SSL_CERT_FILE`` and dials through ``AIRLOCK_SERVICE_URLS`` and
``AIRLOCK_EGRESS_RESOLVE``. It answers the first request with a call of Copilot's ``bash`` tool that
commits a file, and the tool's result with a final text.

Without any credential, the headless form still parses, and fails on the login: what Copilot tries then
is its GitHub login endpoint, which the gate's log names (resolved to loopback: nothing real is reached).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import (
    Env,
    airlock,
    approve_and_merge,
    assert_gate_dialled_only,
    gate_log,
    git,
    key_seen_in_sandbox,
    net_rows,
    sandbox_file,
    sandbox_names,
    sandbox_setenv,
)
from fakes import chat_api
from fakes.chat_api import ChatApi
from fakes.messages_api import HOST_NAME, MessagesApi, certificate
from git_airlock.services import PLACEHOLDER

pytestmark = pytest.mark.npm

TASK = "create hello.txt containing hi and commit it"
COMMAND = 'echo hi > hello.txt && git add hello.txt && git commit -m "add hello"'
MODEL = "claude-sonnet-4.6"
"""The model the user picks (Copilot's catalog names it so); the stand-in answers whatever is asked for."""
HEADLESS = ["--allow-all", "--no-ask-user", "--disable-client-telemetry", "-p"]
BASE_URL = "http://127.0.0.1:3128/airlock/anthropic"
GITHUB_HOSTS = (
    "api.github.com",
    "github.com",
    "api.githubcopilot.com",
    "api.individual.githubcopilot.com",
    "api.business.githubcopilot.com",
    "api.enterprise.githubcopilot.com",
    "copilot-telemetry.githubusercontent.com",
    "collector.github.com",
    "default.exp-tas.com",
    "origin-tracker.githubusercontent.com",
    "copilot-proxy.githubusercontent.com",
)
"""Where Copilot CLI 1.0 goes for its GitHub login, its model API and its telemetry (GitHub's Copilot
allowlist reference). Each resolves to loopback, so nothing a sandbox tries reaches GitHub, and the gate's
log still names each attempt."""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[MessagesApi]:
    """The stand-in model, scripted for Copilot's shell tool (``bash``), serving until the test ends."""
    cert, key = certificate(tmp_path)
    with MessagesApi(cert, key, COMMAND, tool="bash") as server:
        yield server


@pytest.fixture
def resolve() -> dict[str, str]:
    """Every host Copilot might dial, resolved to loopback for the gate."""
    return {"AIRLOCK_EGRESS_RESOLVE": ",".join(f"{host}=127.0.0.1" for host in (HOST_NAME, *GITHUB_HOSTS))}


@pytest.fixture
def copilot_ready(
    project: Path,
    hermetic: Env,
    api: MessagesApi,
    resolve: dict[str, str],
    install_agent: Callable[[str, Path], None],
) -> tuple[str, dict[str, str]]:
    """Copilot CLI installed once for the user's sandboxes, an Anthropic key held on the host, and the
    model handed in as the user would (``airlock.passEnv``).

    Returns the key (random: a leak is found by value) and what points the egress gate at the stand-in.
    Only the commands that start a sandbox get it: npm, in `agents install`, keeps the public authorities."""
    install_agent("copilot", project)
    key = "sk-ant-test-" + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    git(project, "config", "airlock.passEnv", "COPILOT_MODEL")
    env = {
        **resolve,
        "AIRLOCK_SERVICE_URLS": f"anthropic=https://{HOST_NAME}:{api.port}",
        "SSL_CERT_FILE": str(api.cert),
        "COPILOT_MODEL": MODEL,
    }
    return key, env


def copilot_command(argv: list[str]) -> list[str]:
    """The agent's part of the sandbox's command line: from ``copilot`` on."""
    return argv[len(argv) - argv[::-1].index("copilot") - 1 :]


def test_run_drives_copilot_headless_through_the_gate(
    project: Path, hermetic: Env, api: MessagesApi, copilot_ready: tuple[str, dict[str, str]]
) -> None:
    """`run` is all a user types: Copilot CLI, in its own-key mode on the gate's endpoint, acts without
    asking, commits, and the commit comes home through review; the key reaches the model API and nothing
    in the sandbox, and nothing but the model API is dialled (no GitHub login, telemetry or update)."""
    key, env = copilot_ready
    base = git(project, "rev-parse", "HEAD").strip()

    dry = airlock("--engine", "bwrap", "--agent", "copilot", "--dry-run", "run", TASK, cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert key not in dry.stdout + dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert copilot_command(argv) == ["copilot", *HEADLESS, TASK]
    assert sandbox_env["ANTHROPIC_API_KEY"] == sandbox_env["COPILOT_PROVIDER_API_KEY"] == PLACEHOLDER
    assert sandbox_env["ANTHROPIC_BASE_URL"] == sandbox_env["COPILOT_PROVIDER_BASE_URL"] == BASE_URL
    assert sandbox_env["COPILOT_PROVIDER_TYPE"] == "anthropic"
    assert sandbox_env["COPILOT_OFFLINE"] == "true" and sandbox_env["COPILOT_AUTO_UPDATE"] == "false"
    assert sandbox_env["COPILOT_MODEL"] == MODEL

    result = airlock("--engine", "bwrap", "--agent", "copilot", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "copilot finished and made 1 new commit(s)" in result.stderr
    assert "Done: hello.txt is committed." in result.stdout
    (name,) = sandbox_names(project)

    # fetched by `run` itself: the commit Copilot's bash tool made in the sandbox's clone
    tip = f"refs/remotes/sandbox-{name}/main"
    assert git(project, "log", "-1", "--format=%s%n%P", tip).split() == ["add", "hello", base]
    assert git(project, "show", f"{tip}:hello.txt") == "hi\n"

    # the conversation: the task, one bash call (Copilot 1.0's tool and schema), its result, the end
    kinds = [kind for _, kind in api.replies if kind != "side"]
    assert kinds == ["tool_use", "final"], kinds
    (asked,) = [request for request, kind in api.replies if kind == "tool_use"]
    (answered,) = [request for request, kind in api.replies if kind == "final"]
    assert asked.method == "POST" and asked.route == "/v1/messages" and asked.body["stream"] is True
    assert asked.body["model"] == MODEL
    assert TASK in json.dumps(asked.body["messages"])
    (bash,) = [tool for tool in asked.body["tools"] if tool["name"] == "bash"]
    assert bash["input_schema"]["required"] == ["command", "description"]
    (outcome,) = answered.tool_results()
    assert outcome.get("is_error") is not True and "add hello" in json.dumps(outcome["content"])
    assert answered.headers["user-agent"].startswith("Anthropic/JS ")

    # every request carried the real key (the gate put it on), and the gate dialled nothing else
    seen = api.seen()
    for request in seen:
        assert request.headers.get("x-api-key") == key, request.path
        assert request.headers["host"] == f"{HOST_NAME}:{api.port}"
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, HOST_NAME, api.port, "anthropic", key)
    (row,) = net_rows(project)
    assert row[:3] == [f"{HOST_NAME}:{api.port}", str(len(seen)), "0"]

    # the key: in nothing the sandbox keeps (HOME with Copilot's sessions and logs, clone, layer), nor in
    # what it sees while it runs
    leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []
    assert f"ANTHROPIC_API_KEY={PLACEHOLDER}" in seen_env

    approve_and_merge(project)
    assert git(project, "log", "-1", "--format=%s").strip() == "add hello"
    assert (project / "hello.txt").read_text() == "hi\n"


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ChatApi]:
    """A stand-in of OpenAI's Chat Completions, what Copilot's own-key mode speaks to an ``openai`` provider."""
    with ChatApi(tmp_path, COMMAND, tool="bash") as server:
        yield server


def test_run_drives_copilot_on_an_openai_key(
    project: Path,
    hermetic: Env,
    chat: ChatApi,
    resolve: dict[str, str],
    install_agent: Callable[[str, Path], None],
) -> None:
    """With an OpenAI key on the host instead, Copilot's own-key mode speaks Chat Completions to the gate's
    openai endpoint (``/v1`` in its base URL), with the key as a bearer token, and the run is the same."""
    install_agent("copilot", project)
    key = "sk-proj-test-" + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", "openai", cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    git(project, "config", "airlock.passEnv", "COPILOT_MODEL")
    env = {
        "AIRLOCK_EGRESS_RESOLVE": resolve["AIRLOCK_EGRESS_RESOLVE"] + f",{chat_api.HOST_NAME}=127.0.0.1",
        "AIRLOCK_SERVICE_URLS": f"openai=https://{chat_api.HOST_NAME}:{chat.port}",
        "SSL_CERT_FILE": str(chat.authority),
        "COPILOT_MODEL": "gpt-5.4",
    }

    dry = airlock("--engine", "bwrap", "--agent", "copilot", "--dry-run", "run", TASK, cwd=project, env=env)
    sandbox_env, _ = sandbox_setenv(dry.stdout)
    assert sandbox_env["COPILOT_PROVIDER_TYPE"] == "openai" and sandbox_env["COPILOT_OFFLINE"] == "true"
    assert sandbox_env["COPILOT_PROVIDER_BASE_URL"] == "http://127.0.0.1:3128/airlock/openai/v1"
    assert sandbox_env["COPILOT_PROVIDER_API_KEY"] == sandbox_env["OPENAI_API_KEY"] == PLACEHOLDER

    result = airlock("--engine", "bwrap", "--agent", "copilot", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "copilot finished and made 1 new commit(s)" in result.stderr
    assert "Done: hello.txt is committed." in result.stdout
    (name,) = sandbox_names(project)
    assert git(project, "show", f"refs/remotes/sandbox-{name}/main:hello.txt") == "hi\n"

    kinds = [kind for _, kind in chat.replies if kind != "side"]
    assert kinds == ["tool_call", "final"], kinds
    (asked,) = [request for request, kind in chat.replies if kind == "tool_call"]
    (answered,) = [request for request, kind in chat.replies if kind == "final"]
    assert asked.route == "/v1/chat/completions" and asked.body["stream"] is True
    assert asked.body["model"] == "gpt-5.4" and TASK in json.dumps(asked.body["messages"])
    assert asked.tool("bash")["parameters"]["required"] == ["command", "description"]
    (outcome,) = answered.tool_results()
    assert "add hello" in json.dumps(outcome["content"])
    for request in chat.seen():
        assert request.headers.get("authorization") == f"Bearer {key}", request.path
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, chat_api.HOST_NAME, chat.port, "openai", key)
    leaks, _ = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []


def test_without_a_key_copilot_wants_its_github_login_which_passes_the_gate_by(
    project: Path, hermetic: Env, resolve: dict[str, str], install_agent: Callable[[str, Path], None]
) -> None:
    """With no key on the host Copilot runs as installed (no own-key mode, no offline switch): it starts in
    the sandbox, takes the headless flags, and stops on the missing GitHub login, not on a flag. A token
    given to it inside goes where Copilot sends it itself, api.github.com over TLS: through the gate as a
    plain tunnel, with no credential endpoint that could hold it (resolved to loopback, nothing answers)."""
    install_agent("copilot", project)
    dry = airlock("--engine", "bwrap", "--agent", "copilot", "--dry-run", "run", TASK, cwd=project, env=resolve)
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert copilot_command(argv) == ["copilot", *HEADLESS, TASK]
    assert not {"COPILOT_PROVIDER_BASE_URL", "COPILOT_OFFLINE", "ANTHROPIC_API_KEY"} & set(sandbox_env)
    assert sandbox_env["COPILOT_AUTO_UPDATE"] == "false"

    version = airlock("--engine", "bwrap", "--agent", "copilot", "up", "--", "--version", cwd=project, env=resolve)
    assert version.returncode == 0, version.stderr
    assert "GitHub Copilot CLI 1.0." in version.stdout

    result = airlock("--engine", "bwrap", "--agent", "copilot", "run", TASK, cwd=project, env=resolve, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert "No authentication information found" in said and "/login" in said, said
    assert "unknown option" not in said.lower() and "unexpected argument" not in said.lower()

    token = "github_pat_" + secrets.token_hex(20)  # what /login or the user's export would leave inside
    inside = f"GH_TOKEN={token} copilot {' '.join(HEADLESS)} '{TASK}' > copilot.txt 2>&1; echo $? >> copilot.txt"
    typed = airlock("--engine", "bwrap", "--agent", "shell", "--name", "login", "up", "--", "-c", inside,
                    cwd=project, env=resolve, timeout=300)  # fmt: skip
    assert typed.returncode == 0, typed.stderr
    said = sandbox_file(hermetic, "login", "copilot.txt").read_text()
    assert "https://api.github.com/copilot_internal/user" in said and said.split()[-1] == "1", said
    log = gate_log(hermetic, "login")
    assert log and {(entry["host"], entry["port"]) for entry in log} == {("api.github.com", 443)}, log
    assert {entry.get("credential") for entry in log} == {None}
    assert {entry["action"] for entry in log} == {"failed"}, log
    assert token not in json.dumps(log)
