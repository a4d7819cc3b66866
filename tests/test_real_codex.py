"""The real Codex CLI in a bwrap sandbox, driven through a whole task by a stand-in of OpenAI's Responses API.

`git airlock run "TASK"` with no extra arguments is all a user types: Codex runs headless (``codex exec``)
without approvals, against the gate's credential endpoint rather than api.openai.com, makes a commit that
comes home through fetch, approve and merge, and calls nobody else (no analytics, no plugin sync: each
would be a connection the gate's log shows).

The model is ``fakes/responses_api.py``: HTTPS on 127.0.0.1 with a certificate for api.openai.com (signed by
an authority of the test's own, which the gate trusts through ``SSL_CERT_FILE``), dialled through
``AIRLOCK_SERVICE_URLS`` and ``AIRLOCK_EGRESS_RESOLVE``. It answers the first model turn with a call of the
shell tool Codex offers (for its default model: a "code mode" ``exec`` script calling
``tools.exec_command``) that commits a file, and the tool's output with a final text. What it records shows
where the key went: the real key arrives there (the gate put it on), and it is found nowhere the sandbox
can look.
"""

from __future__ import annotations

import itertools
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
    git,
    key_seen_in_sandbox,
    net_rows,
    sandbox_names,
    sandbox_setenv,
)
from fakes.responses_api import HOST_NAME, ResponsesApi
from git_airlock.agents import AGENTS
from git_airlock.services import PLACEHOLDER

pytestmark = pytest.mark.npm

TASK = "create hello.txt and commit it"
COMMAND = 'echo hello > hello.txt && git add hello.txt && git commit -m "add hello"'
BASE_URL = "http://127.0.0.1:3128/airlock/openai/v1"
ELSEWHERE = ("ab.chatgpt.com", "github.com", "api.github.com")
"""Hosts Codex 0.171 calls besides its model API unless told not to: its analytics (ab.chatgpt.com), the
plugin marketplace it syncs at start (chatgpt.com, github.com, api.github.com), the interactive UI's update
check (api.github.com). Resolved to loopback too, so that nothing a sandbox tries reaches them."""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ResponsesApi]:
    """The stand-in model, serving until the test ends."""
    with ResponsesApi(tmp_path, COMMAND) as server:
        yield server


@pytest.fixture
def codex_ready(
    project: Path, hermetic: Env, api: ResponsesApi, install_agent: Callable[[str, Path], None]
) -> tuple[str, dict[str, str]]:
    """Codex installed once for the user's sandboxes, and an OpenAI key held on the host.

    Returns the key (random: a leak is found by value) and what points the egress gate at the stand-in:
    the openai endpoint's upstream, the address it dials for api.openai.com and the authority it trusts
    there. Codex's hosts (and the ones it would call home to) resolve to loopback, so nothing a sandbox
    tries reaches the real OpenAI, and the gate's log still names each attempt. Only the commands that
    start a sandbox get it: npm, in `agents install`, keeps the public authorities."""
    install_agent("codex", project)
    key = "sk-proj-test-" + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", "openai", cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    env = {
        "AIRLOCK_SERVICE_URLS": f"openai=https://{HOST_NAME}:{api.port}",
        "AIRLOCK_EGRESS_RESOLVE": ",".join(f"{host}=127.0.0.1" for host in (*AGENTS["codex"].hosts, *ELSEWHERE)),
        "SSL_CERT_FILE": str(api.authority),
    }
    return key, env


def codex_command(argv: list[str]) -> list[str]:
    """The agent's part of the sandbox's command line: from ``codex`` on."""
    return argv[len(argv) - argv[::-1].index("codex") - 1 :]


def config_overrides(command: list[str]) -> dict[str, str]:
    """The ``-c key=value`` settings before Codex's subcommand."""
    overrides = {}
    for flag, setting in itertools.pairwise(command[1:]):
        if flag == "-c":
            key, _, value = setting.partition("=")
            overrides[key] = value
    return overrides


def assert_only_the_stand_in(api: ResponsesApi, hermetic: Env, name: str, key: str) -> None:
    """Every request the stand-in got carried the real key, put on by the gate; the gate dialled nothing
    else (no update check, analytics or plugin sync), and its log holds no key."""
    seen = api.seen()
    assert seen, "Codex never reached the model"
    for request in seen:
        assert request.headers.get("authorization") == f"Bearer {key}", request.path
        assert request.headers["host"] == f"{HOST_NAME}:{api.port}"
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, HOST_NAME, api.port, "openai", key)


def test_run_drives_codex_headless_through_the_gate(
    project: Path, hermetic: Env, api: ResponsesApi, codex_ready: tuple[str, dict[str, str]]
) -> None:
    """`run` is all a user types: Codex acts without approvals, commits, and the commit comes home
    through review; the key reaches the model API and nothing in the sandbox."""
    key, env = codex_ready
    base = git(project, "rev-parse", "HEAD").strip()

    dry = airlock("--engine", "bwrap", "--agent", "codex", "--dry-run", "run", TASK, cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert key not in dry.stdout + dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    command = codex_command(argv)
    assert command[-4:] == ["exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", TASK]
    # Codex ignores OPENAI_BASE_URL: the gate's endpoint goes on its command line, before the subcommand
    assert config_overrides(command[: command.index("exec")])["openai_base_url"] == f'"{BASE_URL}"'
    assert sandbox_env["CODEX_API_KEY"] == sandbox_env["OPENAI_API_KEY"] == PLACEHOLDER
    assert sandbox_env["OPENAI_BASE_URL"] == BASE_URL

    result = airlock("--engine", "bwrap", "--agent", "codex", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "codex finished and made 1 new commit(s)" in result.stderr
    assert "Done: hello.txt is committed." in result.stdout
    (name,) = sandbox_names(project)

    # fetched by `run` itself: the commit Codex's shell tool made in the sandbox's clone
    tip = f"refs/remotes/sandbox-{name}/main"
    assert git(project, "log", "-1", "--format=%s%n%P", tip).split() == ["add", "hello", base]
    assert git(project, "show", f"{tip}:hello.txt") == "hello\n"

    # the conversation: the task, one code-mode script that runs the command, its output, the end
    kinds = [kind for _, kind in api.replies if kind != "side"]
    assert kinds == ["code_mode", "final"], kinds
    (asked,) = [request for request, kind in api.replies if kind == "code_mode"]
    (answered,) = [request for request, kind in api.replies if kind == "final"]
    assert asked.method == "POST" and asked.path == "/v1/responses" and asked.body["stream"] is True
    assert TASK in json.dumps(asked.body["input"])
    (script,) = [tool for tool in asked.tools() if tool["name"] == "exec"]
    assert script["type"] == "custom" and "exec_command(args: {" in script["description"]
    (call,) = [item for item in answered.input_items() if item.get("type") == "custom_tool_call"]
    (outcome,) = answered.tool_outputs()
    assert outcome["type"] == "custom_tool_call_output" and outcome["call_id"] == call["call_id"]
    assert "add hello" in json.dumps(outcome["output"])
    assert answered.headers["user-agent"].startswith("codex_exec/0.")
    assert_only_the_stand_in(api, hermetic, name, key)
    (row,) = net_rows(project)
    assert row[:3] == [f"{HOST_NAME}:{api.port}", str(len(api.seen())), "0"]

    # the key: in nothing the sandbox keeps (HOME with Codex's sessions, clone, layer), nor in what it
    # sees while it runs
    leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []
    assert f"OPENAI_API_KEY={PLACEHOLDER}" in seen_env

    approve_and_merge(project)
    assert git(project, "log", "-1", "--format=%s").strip() == "add hello"
    assert (project / "hello.txt").read_text() == "hello\n"
